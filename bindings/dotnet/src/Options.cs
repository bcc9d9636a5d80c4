// Options shared by every constructor: namespace, permissions, lifetime, owner checks, waits.
using System;
using System.Collections.Generic;

namespace Shmbus
{
    /// <summary>How to create or open an object. Every property is optional; unset ones keep
    /// the library's defaults (namespace from <c>SHMBUS_NAMESPACE</c>, mode 0600, removed
    /// when its creator disposes it, only objects we own are opened).</summary>
    public sealed class ShmbusOptions
    {
        /// <summary>The namespace the object lives in (keeps applications and tests apart).</summary>
        public string Namespace { get; set; }
        /// <summary>Permission bits of a created object, e.g. 0x1A4 (0644).</summary>
        public uint? Mode { get; set; }
        /// <summary>Keep a created object after its creator disposes it.</summary>
        public bool Persistent { get; set; }
        /// <summary>How long an open waits for a creator still initialising the object.</summary>
        public TimeSpan? OpenTimeout { get; set; }
        /// <summary>How long an open waits for an object that does not exist yet to be
        /// created by another process (<c>Timeout.InfiniteTimeSpan</c>: as long as it takes);
        /// unset or zero: not found at once. It watches /dev/shm (inotify): no polling.</summary>
        public TimeSpan? WaitForCreation { get; set; }
        /// <summary>How long a blocking wait spins before it sleeps in the kernel.</summary>
        public TimeSpan? Spin { get; set; }
        /// <summary>Also open objects owned by these uids (besides our own).</summary>
        public List<uint> AllowOwner { get; private set; }
        /// <summary>Open objects whoever owns them.</summary>
        public bool AllowAnyOwner { get; set; }
        /// <summary>Only open objects owned by this uid.</summary>
        public uint? RequireOwner { get; set; }

        /// <summary>Options with every property unset.</summary>
        public ShmbusOptions() { AllowOwner = new List<uint>(); }

        /// <summary>The native options (a NULL handle for null options).</summary>
        internal static OptionsHandle Build(ShmbusOptions o)
        {
            if (o == null) return new OptionsHandle(); // NULL: the defaults
            OptionsHandle h;
            ShmbusException.Check(Native.shmbus_options_create(out h));
            try
            {
                if (o.Namespace != null) ShmbusException.Check(Native.shmbus_options_set_namespace(h, o.Namespace));
                if (o.Mode.HasValue) ShmbusException.Check(Native.shmbus_options_set_mode(h, o.Mode.Value));
                ShmbusException.Check(Native.shmbus_options_set_persistent(h, o.Persistent ? 1 : 0));
                if (o.OpenTimeout.HasValue) ShmbusException.Check(Native.shmbus_options_set_open_timeout(h, Native.Nanos(o.OpenTimeout.Value)));
                if (o.WaitForCreation.HasValue) ShmbusException.Check(Native.shmbus_options_set_wait_for_creation(h, Native.Nanos(o.WaitForCreation.Value)));
                if (o.Spin.HasValue) ShmbusException.Check(Native.shmbus_options_set_spin(h, Native.Nanos(o.Spin.Value)));
                foreach (uint uid in o.AllowOwner) ShmbusException.Check(Native.shmbus_options_allow_owner(h, uid));
                if (o.AllowAnyOwner) ShmbusException.Check(Native.shmbus_options_allow_any_owner(h));
                if (o.RequireOwner.HasValue) ShmbusException.Check(Native.shmbus_options_require_owner(h, o.RequireOwner.Value));
                return h;
            }
            catch
            {
                h.Dispose();
                throw;
            }
        }
    }
}
