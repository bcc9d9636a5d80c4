// A cross-process event, like a Win32 named event but with no lost wake-ups.
using System;
using System.Threading;

namespace Shmbus
{
    /// <summary>
    /// A named cross-process event. Manual reset: stays set, releasing every waiter, until
    /// <see cref="Reset"/>. Auto reset: each <see cref="Set"/> releases exactly one waiter
    /// (or the next to come). Unlike a manual-reset event that one reader resets, no waiter
    /// is ever missed. Safe to use from several threads.
    /// </summary>
    public sealed class NamedEvent : IDisposable
    {
        private readonly EventHandle handle;
        private readonly string name;

        private NamedEvent(EventHandle handle, string name)
        {
            this.handle = handle;
            this.name = name;
        }

        /// <summary>Creates event <paramref name="name"/>, unset.</summary>
        public static NamedEvent Create(string name, bool manualReset = false, ShmbusOptions options = null)
        {
            EventHandle h;
            using (var opts = ShmbusOptions.Build(options))
                ShmbusException.Check(Native.shmbus_event_create_with(name, manualReset ? 1 : 0, opts, out h));
            return new NamedEvent(h, name);
        }

        /// <summary>Opens event <paramref name="name"/>.</summary>
        /// <exception cref="ShmbusNotFoundException">It does not exist.</exception>
        public static NamedEvent Open(string name, ShmbusOptions options = null)
        {
            EventHandle h;
            using (var opts = ShmbusOptions.Build(options))
                ShmbusException.Check(Native.shmbus_event_open_with(name, opts, out h));
            return new NamedEvent(h, name);
        }

        /// <summary>Opens event <paramref name="name"/> if it exists, else creates it.</summary>
        public static NamedEvent CreateOrOpen(string name, bool manualReset = false, ShmbusOptions options = null)
        {
            EventHandle h;
            using (var opts = ShmbusOptions.Build(options))
                ShmbusException.Check(Native.shmbus_event_create_or_open(name, manualReset ? 1 : 0, opts, out h));
            return new NamedEvent(h, name);
        }

        /// <summary>The event's name.</summary>
        public string Name { get { return name; } }

        /// <summary>Sets the event, waking waiters.</summary>
        public void Set() { ShmbusException.Check(Native.shmbus_event_set(Handle)); }

        /// <summary>Unsets the event.</summary>
        public void Reset() { ShmbusException.Check(Native.shmbus_event_reset(Handle)); }

        /// <summary>Whether the event is set now.</summary>
        public bool IsSet { get { return ShmbusException.Check(Native.shmbus_event_is_set(Handle)) == 1; } }

        /// <summary>Waits until the event is set (an auto-reset event is consumed).</summary>
        public bool WaitOne() { return WaitOne(Timeout.InfiniteTimeSpan); }

        /// <summary>Waits at most <paramref name="timeout"/> for the event: false when it
        /// passes first.</summary>
        public bool WaitOne(TimeSpan timeout)
        {
            int rc = Native.shmbus_event_wait(Handle, Native.Nanos(timeout));
            if (rc == (int)Status.Timeout) return false;
            ShmbusException.Check(rc);
            return true;
        }

        /// <summary>Closes the event (its creator's close removes it unless persistent).</summary>
        public void Dispose() { handle.Dispose(); }

        internal EventHandle Handle
        {
            get
            {
                if (handle.IsClosed) throw new ObjectDisposedException("NamedEvent " + name);
                return handle;
            }
        }
    }
}
