// A broadcast channel's reading end.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;

namespace Shmbus
{
    /// <summary>
    /// One reader of a broadcast channel; every subscriber gets every message, in order.
    /// Receive with <see cref="Receive()"/>, <see cref="TryReceive"/>, <c>foreach</c> (to
    /// the end of the stream), <see cref="ReceiveRef(SpanReader)"/> (zero-copy), or the
    /// <see cref="Received"/> event (a background thread). On a lossy channel, messages the
    /// publisher overwrote before they were read are skipped and counted exactly in
    /// <see cref="Lost"/>. Use from one thread at a time (its properties too); only
    /// <see cref="Dispose"/> may come from another thread, and it does not interrupt a
    /// blocking receive there (the close happens when that call returns).
    /// </summary>
    public sealed class Subscriber : IDisposable, IEnumerable<byte[]>
    {
        private readonly SubscriberHandle handle;
        private readonly string name;
        private readonly int maxMessage;
        private byte[] scratch;
        private readonly object gate = new object();
        private NativeHandler handler;
        private ReceivedEventHandler<byte[]> received;
        private long lostBefore;

        /// <summary>Subscribes to channel <paramref name="name"/>: from the next message, or
        /// with <paramref name="fromOldest"/> from the oldest one the ring still holds.</summary>
        public Subscriber(string name, bool fromOldest = false, ShmbusOptions options = null)
        {
            if (name == null) throw new ArgumentNullException("name");
            using (var opts = ShmbusOptions.Build(options))
                ShmbusException.Check(Native.shmbus_subscriber_open_with(name, opts, fromOldest ? 1 : 0, out handle));
            this.name = name;
            Native.ChannelConfig cfg;
            ShmbusException.Check(Native.shmbus_subscriber_config(handle, out cfg));
            maxMessage = (int)cfg.MaxMessage.ToUInt64();
            Backpressure = cfg.Mode == 1;
        }

        /// <summary>The channel's name.</summary>
        public string Name { get { return name; } }

        /// <summary>Whether this is a back-pressure channel (zero-copy receives need one).</summary>
        public bool Backpressure { get; private set; }

        /// <summary>Messages lost so far (lossy channels): exact.</summary>
        public long Lost
        {
            get
            {
                lock (gate)
                {
                    if (handler != null) return lostBefore + Interlocked.Read(ref handler.Counted);
                    return (long)Native.shmbus_subscriber_lost(Handle);
                }
            }
        }

        /// <summary>Whether the channel's publisher lives now (not available once the
        /// subscriber delivers through <see cref="Received"/>).</summary>
        public bool PublisherAlive { get { return ShmbusException.Check(Native.shmbus_subscriber_publisher_alive(Handle)) == 1; } }

        /// <summary>The next message, waiting as long as it takes.</summary>
        /// <exception cref="ShmbusDisconnectedException">The stream ended.</exception>
        /// <exception cref="ShmbusPublisherGoneException">The publisher died.</exception>
        public byte[] Receive() { return Receive(Timeout.InfiniteTimeSpan); }

        /// <summary>The next message, waiting at most <paramref name="timeout"/>
        /// (<see cref="ShmbusTimeoutException"/>).</summary>
        public byte[] Receive(TimeSpan timeout)
        {
            byte[] m;
            int rc = ReceiveStatus(Native.Nanos(timeout), out m);
            ShmbusException.Check(rc);
            return m;
        }

        /// <summary>The next message if one is waiting: false when none is.</summary>
        /// <exception cref="ShmbusDisconnectedException">The stream ended.</exception>
        public bool TryReceive(out byte[] message)
        {
            int rc = ReceiveStatus(0, out message);
            if (rc == (int)Status.Empty) return false;
            ShmbusException.Check(rc);
            return true;
        }

        /// <summary>Zero-copy receive (back-pressure channels): calls <paramref name="reader"/>
        /// with the next message in place in the ring, then gives the bytes back to the
        /// publisher. The span must not be kept past the call.</summary>
        public unsafe void ReceiveRef(SpanReader reader, TimeSpan timeout)
        {
            if (reader == null) throw new ArgumentNullException("reader");
            var h = Handle;
            IntPtr data;
            UIntPtr len;
            long ns = Native.Nanos(timeout);
            int rc;
            while ((rc = Native.shmbus_subscriber_recv_ref(h, out data, out len, ns)) == (int)Status.Lagged) { }
            ShmbusException.Check(rc);
            // The mapping must outlive the span: a Dispose (from any thread) meanwhile only
            // takes effect when the reader returns.
            bool added = false;
            h.DangerousAddRef(ref added);
            busyThread = Thread.CurrentThread.ManagedThreadId;
            try
            {
                reader(new ReadOnlySpan<byte>((void*)data, (int)len.ToUInt64()));
            }
            finally
            {
                busyThread = -1;
                Native.shmbus_subscriber_release(h);
                if (added) h.DangerousRelease();
            }
        }

        /// <summary><see cref="ReceiveRef(SpanReader, TimeSpan)"/> waiting as long as it takes.</summary>
        public void ReceiveRef(SpanReader reader) { ReceiveRef(reader, Timeout.InfiniteTimeSpan); }

        /// <summary>
        /// Raised on a background thread for each message. Adding the first handler hands
        /// the subscriber to that thread: from then on the other receive calls throw
        /// <see cref="InvalidOperationException"/>. <see cref="Dispose"/> stops the thread and
        /// waits for it. An exception thrown by a handler goes to
        /// <see cref="ShmbusHandlers.Unhandled"/>.
        /// </summary>
        public event ReceivedEventHandler<byte[]> Received
        {
            add
            {
                lock (gate)
                {
                    if (disposed) throw new ObjectDisposedException("Subscriber " + name);
                    received += value;
                    if (handler == null) Start();
                }
            }
            remove { lock (gate) { received -= value; } }
        }

        /// <summary>Messages until the end of the stream (losses are skipped and counted in
        /// <see cref="Lost"/>); a dead publisher throws <see cref="ShmbusPublisherGoneException"/>.</summary>
        public IEnumerator<byte[]> GetEnumerator()
        {
            while (true)
            {
                byte[] m;
                int rc = ReceiveStatus(-1, out m);
                if (rc == (int)Status.Disconnected) yield break;
                ShmbusException.Check(rc);
                yield return m;
            }
        }

        IEnumerator IEnumerable.GetEnumerator() { return GetEnumerator(); }

        /// <summary>Leaves the channel; stops the <see cref="Received"/> thread first (waiting
        /// for a callback in progress).</summary>
        public void Dispose()
        {
            if (busyThread == Thread.CurrentThread.ManagedThreadId)
                throw new InvalidOperationException("a subscriber cannot be disposed from its own ReceiveRef reader");
            NativeHandler h;
            lock (gate) { h = handler; }
            if (h != null) h.Dispose(); // throws, changing nothing, from the handler's own callback
            lock (gate) { disposed = true; }
            handle.Dispose();
        }

        internal SubscriberHandle Handle
        {
            get
            {
                // (A subscriber handed to its Received thread has a consumed, closed handle:
                // say why it cannot be used before saying it is closed.)
                if (handler != null && !disposed)
                    throw new InvalidOperationException("subscriber " + name + " delivers through its Received event");
                if (handle.IsClosed) throw new ObjectDisposedException("Subscriber " + name);
                if (busyThread == Thread.CurrentThread.ManagedThreadId)
                    throw new InvalidOperationException("subscriber " + name + " is lending a message to a ReceiveRef " +
                                                        "reader: return from the reader first");
                return handle;
            }
        }

        // The thread running a ReceiveRef reader (which must not receive or dispose meanwhile).
        private int busyThread = -1;
        private bool disposed;

        /// <summary>One receive (losses skipped), as a status.</summary>
        private unsafe int ReceiveStatus(long timeoutNs, out byte[] message)
        {
            message = null;
            var h = Handle;
            if (scratch == null) scratch = new byte[Math.Max(maxMessage, 1)];
            while (true)
            {
                UIntPtr len;
                int rc;
                fixed (byte* p = scratch)
                    rc = Native.shmbus_subscriber_recv(h, p, (UIntPtr)(ulong)scratch.Length, out len, timeoutNs);
                if (rc == (int)Status.Lagged) continue; // counted in Lost; the next one is there
                if (rc == (int)Status.TooSmall)
                {
                    scratch = new byte[(int)len.ToUInt64()];
                    continue;
                }
                if (rc < 0) return rc;
                message = new byte[(int)len.ToUInt64()];
                Buffer.BlockCopy(scratch, 0, message, 0, message.Length);
                return rc;
            }
        }

        private void Start()
        {
            if (handle.IsClosed) throw new ObjectDisposedException("Subscriber " + name);
            NativeHandler self = null;
            Native.MessageFn cb = null;
            cb = (data, len, lost, user) =>
            {
                try
                {
                    self.Entered();
                    Interlocked.Add(ref self.Counted, (long)lost);
                    var m = new byte[(int)len.ToUInt64()];
                    if (m.Length > 0) Marshal.Copy(data, m, 0, m.Length);
                    var listeners = received;
                    if (listeners != null) listeners(m);
                }
                catch (Exception e)
                {
                    // Nothing may unwind into the library's thread.
                    ShmbusHandlers.Report(name, e);
                }
                finally
                {
                    self.Left();
                }
            };
            lostBefore = (long)Native.shmbus_subscriber_lost(handle);
            self = new NativeHandler(cb);
            HandlerHandle hh;
            // The native call consumes the subscriber whatever it returns.
            int rc = Native.shmbus_subscriber_on_message(handle.Consume(), cb, IntPtr.Zero, out hh);
            handler = self;
            ShmbusException.Check(rc);
            self.Attach(hh);
        }
    }
}
