// The latest value of something, shared torn-read free.
using System;
using System.Runtime.InteropServices;
using System.Threading;

namespace Shmbus
{
    /// <summary>
    /// The latest value of something: one writer at a time, any number of readers, never a
    /// torn read, its exact length and a version that counts writes. Safe to use from
    /// several threads.
    /// </summary>
    public sealed class Blackboard : IDisposable
    {
        private readonly BlackboardHandle handle;
        private readonly string name;
        private readonly object gate = new object();
        private NativeHandler handler;
        private ReceivedEventHandler<byte[]> updated;
        private bool disposed;

        private Blackboard(BlackboardHandle handle, string name)
        {
            this.handle = handle;
            this.name = name;
            Capacity = (int)Native.shmbus_blackboard_capacity(handle).ToUInt64();
        }

        /// <summary>Creates blackboard <paramref name="name"/> for values of up to
        /// <paramref name="capacity"/> bytes.</summary>
        public static Blackboard Create(string name, int capacity, ShmbusOptions options = null)
        {
            if (capacity < 0) throw new ArgumentOutOfRangeException("capacity");
            BlackboardHandle h;
            using (var opts = ShmbusOptions.Build(options))
                ShmbusException.Check(Native.shmbus_blackboard_create_with(name, (UIntPtr)(ulong)capacity, opts, out h));
            return new Blackboard(h, name);
        }

        /// <summary>Opens blackboard <paramref name="name"/>.</summary>
        /// <exception cref="ShmbusNotFoundException">It does not exist.</exception>
        public static Blackboard Open(string name, ShmbusOptions options = null)
        {
            BlackboardHandle h;
            using (var opts = ShmbusOptions.Build(options))
                ShmbusException.Check(Native.shmbus_blackboard_open_with(name, opts, out h));
            return new Blackboard(h, name);
        }

        /// <summary>Opens blackboard <paramref name="name"/> if it exists, else creates it.</summary>
        public static Blackboard CreateOrOpen(string name, int capacity, ShmbusOptions options = null)
        {
            if (capacity < 0) throw new ArgumentOutOfRangeException("capacity");
            BlackboardHandle h;
            using (var opts = ShmbusOptions.Build(options))
                ShmbusException.Check(Native.shmbus_blackboard_create_or_open(name, (UIntPtr)(ulong)capacity, opts, out h));
            return new Blackboard(h, name);
        }

        /// <summary>The blackboard's name.</summary>
        public string Name { get { return name; } }

        /// <summary>The largest value, in bytes.</summary>
        public int Capacity { get; private set; }

        /// <summary>The version of the current value (0: never written).</summary>
        public long Version { get { return (long)Native.shmbus_blackboard_version(Handle); } }

        /// <summary>Replaces the value (readers see all of it or none of it); returns the
        /// version read just after (another writer may have written since).</summary>
        public unsafe long Write(byte[] data)
        {
            if (data == null) throw new ArgumentNullException("data");
            return Write(new ReadOnlySpan<byte>(data));
        }

        /// <summary>Replaces the value with the bytes of <paramref name="data"/>.</summary>
        public unsafe long Write(ReadOnlySpan<byte> data)
        {
            fixed (byte* p = &MemoryMarshal.GetReference(data))
                ShmbusException.Check(Native.shmbus_blackboard_write(Handle, p, (UIntPtr)(ulong)data.Length));
            return Version;
        }

        /// <summary>The current value: exactly the bytes last written (empty before the
        /// first write).</summary>
        public byte[] Read()
        {
            long version;
            return Read(out version);
        }

        /// <summary>The current value and its version.</summary>
        public unsafe byte[] Read(out long version)
        {
            var buf = new byte[Math.Max(Capacity, 1)];
            UIntPtr len;
            ulong v;
            fixed (byte* p = buf)
                ShmbusException.Check(Native.shmbus_blackboard_read(Handle, p, (UIntPtr)(ulong)buf.Length, out len, out v));
            version = (long)v;
            var value = new byte[(int)len.ToUInt64()];
            Buffer.BlockCopy(buf, 0, value, 0, value.Length);
            return value;
        }

        /// <summary>Waits until the version is newer than <paramref name="version"/>: the new
        /// version, or null after <paramref name="timeout"/>.</summary>
        public long? WaitNewer(long version, TimeSpan timeout)
        {
            ulong newer;
            int rc = Native.shmbus_blackboard_wait_newer(Handle, (ulong)version, Native.Nanos(timeout), out newer);
            if (rc == (int)Status.Timeout) return null;
            ShmbusException.Check(rc);
            return (long)newer;
        }

        /// <summary>Raised on a background thread with each value written after the first
        /// handler was added (a slow handler gets the newest value; <see cref="Skipped"/>
        /// counts the versions it never saw). <see cref="Dispose"/> stops the thread and waits
        /// for it.</summary>
        public event ReceivedEventHandler<byte[]> Updated
        {
            add
            {
                lock (gate)
                {
                    if (disposed) throw new ObjectDisposedException("Blackboard " + name);
                    updated += value;
                    if (handler == null) handler = StartHandler(name, Handle, (ulong)Version, () => updated);
                }
            }
            remove { lock (gate) { updated -= value; } }
        }

        /// <summary>Versions the <see cref="Updated"/> handler skipped because values were
        /// written faster than it ran.</summary>
        public long Skipped
        {
            get
            {
                var h = handler;
                return h == null ? 0 : Interlocked.Read(ref h.Counted);
            }
        }

        /// <summary>Stops the <see cref="Updated"/> thread (waiting for a callback in
        /// progress) and closes the blackboard (its creator's close removes it unless
        /// persistent).</summary>
        public void Dispose()
        {
            NativeHandler h;
            lock (gate) { h = handler; }
            if (h != null) h.Dispose(); // throws, changing nothing, from the handler's own callback
            lock (gate)
            {
                disposed = true;
                // A handler added meanwhile by another thread is stopped too.
                if (handler != null && handler != h) handler.Dispose();
            }
            handle.Dispose();
        }

        internal BlackboardHandle Handle
        {
            get
            {
                if (handle.IsClosed) throw new ObjectDisposedException("Blackboard " + name);
                return handle;
            }
        }

        /// <summary>Starts a native update handler calling what <paramref name="listeners"/>
        /// returns with each value after version <paramref name="from"/>; it counts skipped
        /// versions in its <see cref="NativeHandler.Counted"/>.</summary>
        internal static NativeHandler StartHandler(string name, BlackboardHandle board, ulong from,
                                                   Func<ReceivedEventHandler<byte[]>> listeners)
        {
            NativeHandler self = null;
            Native.UpdateFn cb = (data, len, version, skipped, user) =>
            {
                try
                {
                    self.Entered();
                    Interlocked.Add(ref self.Counted, (long)skipped);
                    var value = new byte[(int)len.ToUInt64()];
                    if (value.Length > 0) Marshal.Copy(data, value, 0, value.Length);
                    var l = listeners();
                    if (l != null) l(value);
                }
                catch (Exception e)
                {
                    ShmbusHandlers.Report(name, e);
                }
                finally
                {
                    self.Left();
                }
            };
            self = new NativeHandler(cb);
            HandlerHandle hh;
            ShmbusException.Check(Native.shmbus_blackboard_on_update(board, from, cb, IntPtr.Zero, out hh));
            self.Attach(hh);
            return self;
        }
    }
}
