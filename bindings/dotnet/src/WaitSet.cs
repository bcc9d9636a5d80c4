// Waiting on many objects at once, in one thread and one system call.
using System;
using System.Threading;

namespace Shmbus
{
    /// <summary>
    /// Waits on many objects at once, in one thread and one system call: subscribers,
    /// events, blackboards, keys of keyed blackboards, timers, and objects that do not exist
    /// yet. Each <c>Attach</c> call returns a key; <see cref="Wait(TimeSpan)"/> returns the
    /// keys of the attachments that are ready, and the caller then receives, reads or opens
    /// as usual.
    /// <list type="bullet">
    /// <item><description>A subscriber is ready while it has something to report: a message,
    /// a loss, the end of the stream, or a dead publisher (receive to find out which).</description></item>
    /// <item><description>A manual-reset event is ready while it is set. An auto-reset event
    /// is ready when the set took one of its releases for the caller (the wait consumes it,
    /// as <see cref="NamedEvent.WaitOne()"/> does, so no other waiter is woken for it).</description></item>
    /// <item><description>A blackboard, or one key of a keyed blackboard, is ready once per
    /// version newer than the last reported (the first: newer than when attached).</description></item>
    /// <item><description>A timer is ready every period (periods missed while nobody waited
    /// are skipped, not queued).</description></item>
    /// <item><description>The appearance of an object is ready once, when the object exists
    /// and its creator has finished it: open it then.</description></item>
    /// </list>
    /// The set keeps each attached object's memory mapped itself, so disposing an attached
    /// <see cref="Subscriber"/>, <see cref="NamedEvent"/> or board is safe; the attachment
    /// stays until <see cref="Detach"/> (a disposed subscriber's is never ready again:
    /// detach it too). Use a wait set from one
    /// thread at a time: a call while another thread is in one (a blocking
    /// <see cref="Wait(TimeSpan)"/>, say) throws <see cref="InvalidOperationException"/>.
    /// Only <see cref="Dispose"/> may come from another thread, and it does not interrupt a
    /// wait in progress there (the close happens when that wait returns).
    /// </summary>
    public sealed class WaitSet : IDisposable
    {
        private readonly WaitSetHandle handle;
        // Attachments now: a wait's buffer has room for all of them, so that every ready key
        // comes back from one native wait (nothing is left over for the next).
        private int count;
        private ulong[] ready = new ulong[16];
        // 1 while a call uses the native handle (which one thread at a time may use).
        private int busy;

        private static readonly ulong[] None = new ulong[0];

        /// <summary>A new, empty wait set.</summary>
        public WaitSet()
        {
            ShmbusException.Check(Native.shmbus_waitset_create(out handle));
        }

        /// <summary>How many attachments the set has.</summary>
        public int Count { get { return Volatile.Read(ref count); } }

        /// <summary>Attaches <paramref name="subscriber"/>: ready while it has a message, a
        /// loss or the end of the stream to receive, or its publisher died. The subscriber
        /// stays usable as before (receive from it when its key is ready; after a dead
        /// publisher, any receive, <see cref="Subscriber.TryReceive"/> too, throws
        /// <see cref="ShmbusPublisherGoneException"/>). Attaching is a use of the subscriber:
        /// not while another thread receives from it.</summary>
        /// <returns>The attachment's key, which <see cref="Wait(TimeSpan)"/> returns when it
        /// is ready.</returns>
        /// <exception cref="ObjectDisposedException">The subscriber or the set is disposed.</exception>
        /// <exception cref="InvalidOperationException">The subscriber delivers through its
        /// <see cref="Subscriber.Received"/> event.</exception>
        /// <exception cref="ShmbusException">Status <see cref="Status.Invalid"/>: the set
        /// already waits on as many subscribers, events and boards as one system call takes
        /// (127).</exception>
        public ulong AttachSubscriber(Subscriber subscriber)
        {
            if (subscriber == null) throw new ArgumentNullException("subscriber");
            var ws = Enter();
            try
            {
                ulong key;
                return Attached(Native.shmbus_waitset_attach_subscriber(ws, subscriber.Handle, out key), key);
            }
            finally
            {
                Exit();
            }
        }

        /// <summary>Attaches event <paramref name="namedEvent"/>: a manual-reset event is
        /// ready while set; an auto-reset event is ready when the set took a release for the
        /// caller (the wait consumes it).</summary>
        /// <returns>The attachment's key.</returns>
        /// <exception cref="ObjectDisposedException">The event or the set is disposed.</exception>
        /// <exception cref="ShmbusException">Status <see cref="Status.Invalid"/>: the set
        /// already waits on as many subscribers, events and boards as one system call takes
        /// (127).</exception>
        public ulong AttachEvent(NamedEvent namedEvent)
        {
            if (namedEvent == null) throw new ArgumentNullException("namedEvent");
            var ws = Enter();
            try
            {
                ulong key;
                return Attached(Native.shmbus_waitset_attach_event(ws, namedEvent.Handle, out key), key);
            }
            finally
            {
                Exit();
            }
        }

        /// <summary>Attaches blackboard <paramref name="board"/>: ready once per version
        /// newer than the last reported (the first: newer than its version now).</summary>
        /// <returns>The attachment's key.</returns>
        /// <exception cref="ObjectDisposedException">The board or the set is disposed.</exception>
        /// <exception cref="ShmbusException">Status <see cref="Status.Invalid"/>: the set
        /// already waits on as many subscribers, events and boards as one system call takes
        /// (127).</exception>
        public ulong AttachBlackboard(Blackboard board)
        {
            if (board == null) throw new ArgumentNullException("board");
            var ws = Enter();
            try
            {
                ulong key;
                return Attached(Native.shmbus_waitset_attach_blackboard(ws, board.Handle, out key), key);
            }
            finally
            {
                Exit();
            }
        }

        /// <summary>Attaches key <paramref name="key"/> of keyed blackboard
        /// <paramref name="board"/>, as <see cref="AttachBlackboard"/>: ready once per
        /// version of that key newer than the last reported (writes of other keys do not make
        /// it ready).</summary>
        /// <returns>The attachment's key (a number of the set's, unrelated to
        /// <paramref name="key"/>).</returns>
        /// <exception cref="ShmbusUnknownKeyException">The board has no such key.</exception>
        /// <exception cref="ObjectDisposedException">The board or the set is disposed.</exception>
        /// <exception cref="ShmbusException">Status <see cref="Status.Invalid"/>: the set
        /// already waits on as many subscribers, events and boards as one system call takes
        /// (127).</exception>
        public ulong AttachKey(KeyedBlackboard board, string key)
        {
            if (board == null) throw new ArgumentNullException("board");
            if (key == null) throw new ArgumentNullException("key");
            var ws = Enter();
            try
            {
                var b = board.Handle;
                byte[] k = board.Lookup(key);
                ulong attached;
                return Attached(Native.shmbus_waitset_attach_keyed_key(ws, b, k, out attached), attached, key);
            }
            finally
            {
                Exit();
            }
        }

        /// <summary>Attaches a timer: ready every <paramref name="period"/> from now (periods
        /// missed while nobody waited are skipped, not queued). Timers do not count towards
        /// the 127 objects a set waits on.</summary>
        /// <returns>The attachment's key.</returns>
        /// <exception cref="ArgumentOutOfRangeException"><paramref name="period"/> is negative
        /// or <see cref="Timeout.InfiniteTimeSpan"/>.</exception>
        /// <exception cref="ShmbusException">Status <see cref="Status.Invalid"/>:
        /// <paramref name="period"/> is zero.</exception>
        /// <exception cref="ObjectDisposedException">The set is disposed.</exception>
        public ulong AttachTimer(TimeSpan period)
        {
            if (period == Timeout.InfiniteTimeSpan || period < TimeSpan.Zero)
                throw new ArgumentOutOfRangeException("period", "a timer's period is above zero");
            long ns = Native.Nanos(period);
            var ws = Enter();
            try
            {
                ulong key;
                return Attached(Native.shmbus_waitset_attach_timer(ws, ns, out key), key);
            }
            finally
            {
                Exit();
            }
        }

        /// <summary>Attaches the appearance of object <paramref name="name"/> (of any kind, in
        /// the namespace of <paramref name="options"/>, owned by a user they accept; null: the
        /// defaults): ready once, when it exists and its creator has finished it (an object
        /// that exists already is ready at the next wait). Open it then. No polling: the
        /// library watches /dev/shm. Appearances do not count towards the 127 objects a set
        /// waits on.</summary>
        /// <returns>The attachment's key.</returns>
        /// <exception cref="ShmbusException">Status <see cref="Status.Invalid"/>: the name
        /// breaks the naming rules.</exception>
        /// <exception cref="ObjectDisposedException">The set is disposed.</exception>
        public ulong AttachAppearance(string name, ShmbusOptions options = null)
        {
            if (name == null) throw new ArgumentNullException("name");
            var ws = Enter();
            try
            {
                using (var opts = ShmbusOptions.Build(options))
                {
                    ulong key;
                    return Attached(Native.shmbus_waitset_attach_appearance(ws, name, opts, out key), key);
                }
            }
            finally
            {
                Exit();
            }
        }

        /// <summary>Detaches <paramref name="key"/>: it is never returned for that attachment
        /// again (a ready key not yet returned is dropped). A later attachment may reuse the
        /// number.</summary>
        /// <exception cref="ShmbusException">Status <see cref="Status.Invalid"/>:
        /// <paramref name="key"/> is not attached (or was detached already).</exception>
        /// <exception cref="ObjectDisposedException">The set is disposed.</exception>
        public void Detach(ulong key)
        {
            var ws = Enter();
            try
            {
                ShmbusException.Check(Native.shmbus_waitset_detach(ws, key));
                count--;
            }
            finally
            {
                Exit();
            }
        }

        /// <summary>Waits as long as it takes until at least one attachment is ready; returns
        /// the ready keys (see <see cref="Wait(TimeSpan)"/>).</summary>
        /// <exception cref="InvalidOperationException">Nothing is attached: the wait would
        /// never end.</exception>
        public ulong[] Wait() { return Wait(Timeout.InfiniteTimeSpan); }

        /// <summary>Waits until at least one attachment is ready, at most
        /// <paramref name="timeout"/> (<see cref="Timeout.InfiniteTimeSpan"/>: as long as it
        /// takes; zero: only looks). Returns every ready key, each once, in key order; an
        /// empty array when the timeout passed first. Then receive, read or open what the keys
        /// name.</summary>
        /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is
        /// negative (other than <see cref="Timeout.InfiniteTimeSpan"/>).</exception>
        /// <exception cref="InvalidOperationException"><paramref name="timeout"/> is
        /// <see cref="Timeout.InfiniteTimeSpan"/> and nothing is attached: the wait would
        /// never end.</exception>
        /// <exception cref="ObjectDisposedException">The set is disposed.</exception>
        public unsafe ulong[] Wait(TimeSpan timeout)
        {
            long ns = Native.Nanos(timeout);
            var ws = Enter();
            try
            {
                if (count == 0 && ns < 0)
                    throw new InvalidOperationException("a wait set with nothing attached would wait forever: attach something first, or give a timeout");
                // Room for every attachment: one native wait reports each ready attachment
                // at most once, so all of them fit and none is kept for the next wait.
                if (ready.Length < count) ready = new ulong[Math.Max(count, ready.Length * 2)];
                UIntPtr n;
                int rc;
                fixed (ulong* p = ready)
                    rc = Native.shmbus_waitset_wait(ws, ns, p, (UIntPtr)(ulong)ready.Length, out n);
                if (rc == (int)Status.Timeout) return None;
                ShmbusException.Check(rc);
                var keys = new ulong[(int)n.ToUInt64()];
                Array.Copy(ready, keys, keys.Length);
                return keys;
            }
            finally
            {
                Exit();
            }
        }

        /// <summary>Closes the set. The attached objects stay open (and usable); their
        /// <c>Dispose</c> is theirs to call. Twice is harmless.</summary>
        public void Dispose() { handle.Dispose(); }

        /// <summary>The handle, for one call from this thread only; pair with <see cref="Exit"/>.</summary>
        private WaitSetHandle Enter()
        {
            if (handle.IsClosed) throw new ObjectDisposedException("WaitSet");
            if (Interlocked.CompareExchange(ref busy, 1, 0) != 0)
                throw new InvalidOperationException("the wait set is in use by another thread (a wait set is used by one thread at a time)");
            if (handle.IsClosed)
            {
                Exit();
                throw new ObjectDisposedException("WaitSet");
            }
            return handle;
        }

        private void Exit() { Volatile.Write(ref busy, 0); }

        /// <summary>The key an attach call stored, once its status is checked (for key
        /// <paramref name="boardKey"/> of a keyed blackboard, if any); counts the attachment.</summary>
        private ulong Attached(int rc, ulong key, string boardKey = null)
        {
            ShmbusException.Check(rc, boardKey);
            count++;
            return key;
        }
    }
}
