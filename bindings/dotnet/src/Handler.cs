// A receive handler the library runs on its own thread, calling back into C#.
using System;
using System.Runtime.InteropServices;
using System.Threading;

namespace Shmbus
{
    /// <summary>What a stopped receive handler did.</summary>
    public struct HandlerStats
    {
        /// <summary>Values or messages handed to the callback.</summary>
        public long Delivered;
        /// <summary>Messages lost (lossy channels) or versions skipped before delivery.</summary>
        public long Skipped;
    }

    /// <summary>
    /// Owns a native handler and the delegate it calls (kept alive here for as long as the
    /// native thread may call it). Stopping joins the thread; it cannot be done from the
    /// handler's own callback (the thread would wait for itself), which is refused.
    /// </summary>
    internal sealed class NativeHandler : IDisposable
    {
        private HandlerHandle handle;
        // Referenced so that the GC never collects a delegate the native thread calls.
        private readonly Delegate callback;
        private int callbackThread = -1;

        /// <summary>What the callback counts: messages lost, or versions skipped.</summary>
        internal long Counted;

        /// <summary>Made before the native handler starts (its callback may run at once), then
        /// given the handle with <see cref="Attach"/>.</summary>
        internal NativeHandler(Delegate callback)
        {
            this.callback = callback;
        }

        internal void Attach(HandlerHandle h)
        {
            handle = h;
            lock (Live) Live.Add(this);
        }

        // Handlers still running when the process exits are stopped first: the runtime
        // waits at exit for every thread it attached, and a handler thread never ends by
        // itself while its object lives.
        private static readonly System.Collections.Generic.HashSet<NativeHandler> Live =
            new System.Collections.Generic.HashSet<NativeHandler>();

        static NativeHandler()
        {
            AppDomain.CurrentDomain.ProcessExit += (sender, e) =>
            {
                NativeHandler[] all;
                lock (Live) { all = new NativeHandler[Live.Count]; Live.CopyTo(all); }
                foreach (var h in all)
                {
                    try { h.Dispose(); } catch (Exception) { }
                }
            };
        }

        /// <summary>Call at the start of each callback: remembers the handler's thread, and
        /// makes it a background thread (the runtime attached it on its first callback), so
        /// that a handler never disposed does not keep the process from exiting.</summary>
        internal void Entered()
        {
            if (callbackThread == -1)
            {
                Thread.CurrentThread.IsBackground = true;
                callbackThread = Thread.CurrentThread.ManagedThreadId;
            }
        }

        internal bool Running
        {
            get
            {
                var h = handle;
                return h != null && !h.IsClosed && Native.shmbus_handler_is_finished(h) == 0;
            }
        }

        /// <summary>Stops the thread and waits for it; throws the failure that stopped it
        /// early (e.g. the publisher died), if one did.</summary>
        internal HandlerStats Stop()
        {
            RefuseOwnThread();
            var h = Interlocked.Exchange(ref handle, null);
            lock (Live) Live.Remove(this);
            if (h == null || h.IsClosed) return new HandlerStats();
            Native.HandlerStats stats;
            IntPtr raw = h.DangerousGetHandle();
            h.SetHandleAsInvalid();
            int rc = Native.shmbus_handler_stop(raw, out stats);
            GC.KeepAlive(callback);
            ShmbusException.Check(rc);
            return new HandlerStats { Delivered = (long)stats.Delivered, Skipped = (long)stats.Skipped };
        }

        /// <summary>Stops the thread and waits for it, ignoring how it ended.</summary>
        public void Dispose()
        {
            // Refused before anything changes: the owner's later Dispose still stops it.
            RefuseOwnThread();
            var h = Interlocked.Exchange(ref handle, null);
            lock (Live) Live.Remove(this);
            if (h == null) return;
            h.Dispose();
            GC.KeepAlive(callback);
        }

        private void RefuseOwnThread()
        {
            if (Thread.CurrentThread.ManagedThreadId == callbackThread && callbackThread != -1)
                throw new InvalidOperationException(
                    "a receive handler cannot be stopped from its own callback (its thread would wait for " +
                    "itself): dispose the object from another thread");
        }
    }
}
