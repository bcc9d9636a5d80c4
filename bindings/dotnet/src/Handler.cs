// A receive handler the library runs on its own thread, calling back into C#.
using System;
using System.Runtime.InteropServices;
using System.Threading;

namespace Shmbus
{
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
                    // A callback still running (blocked, say) would hold the exit forever:
                    // leave that one; its thread is a background thread.
                    if (Volatile.Read(ref h.inCallback) == 1) continue;
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
            Interlocked.Exchange(ref inCallback, 1);
        }

        /// <summary>Call when each callback ends (in a finally).</summary>
        internal void Left() { Interlocked.Exchange(ref inCallback, 0); }

        private int inCallback;

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

        /// <summary>Throws when called from this handler's own callback (whose thread a stop
        /// would wait for); lets an owner of several handlers check them all before it stops
        /// any.</summary>
        internal void RefuseOwnThread()
        {
            if (Thread.CurrentThread.ManagedThreadId == callbackThread && callbackThread != -1)
                throw new InvalidOperationException(
                    "a receive handler cannot be stopped from its own callback (its thread would wait for " +
                    "itself): dispose the object from another thread");
        }
    }
}
