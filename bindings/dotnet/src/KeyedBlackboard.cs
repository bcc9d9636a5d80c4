// A fixed set of named keys, each the latest value of something, shared torn-read free.
using System;
using System.Collections.Generic;
using System.Collections.ObjectModel;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;

namespace Shmbus
{
    /// <summary>
    /// A fixed set of named keys, chosen when the board is created, each its own
    /// <see cref="Blackboard"/>: one writer at a time per key, any number of readers, never a
    /// torn read, its exact length, and a version of its own that counts that key's writes
    /// (a write to one key neither changes another's version nor wakes its waiters). Other
    /// processes open the board by name and find its keys in <see cref="Keys"/>. A key the
    /// board lacks is a <see cref="ShmbusUnknownKeyException"/>. Safe to use from several
    /// threads.
    /// </summary>
    public sealed class KeyedBlackboard : IDisposable
    {
        private readonly KeyedBlackboardHandle handle;
        private readonly string name;
        private readonly ReadOnlyCollection<string> keys;
        // Each key's NUL-terminated UTF-8 form, as the C API takes it.
        private readonly Dictionary<string, byte[]> keyBytes = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        private readonly object gate = new object();
        private readonly HashSet<Subscription> subscriptions = new HashSet<Subscription>();
        private bool disposed;

        private static readonly UTF8Encoding StrictUtf8 = new UTF8Encoding(false, true);

        private KeyedBlackboard(KeyedBlackboardHandle handle, string name)
        {
            this.handle = handle;
            this.name = name;
            try
            {
                Capacity = (int)Native.shmbus_keyed_blackboard_capacity(handle).ToUInt64();
                ulong count = Native.shmbus_keyed_blackboard_key_count(handle).ToUInt64();
                var list = new List<string>((int)count);
                for (ulong i = 0; i < count; i++)
                {
                    IntPtr p = Native.shmbus_keyed_blackboard_key(handle, (UIntPtr)i);
                    if (p == IntPtr.Zero) throw ShmbusException.From((int)Status.Invalid);
                    string key = Native.Utf8(p);
                    list.Add(key);
                    keyBytes[key] = KeyBytes(key);
                }
                keys = new ReadOnlyCollection<string>(list);
            }
            catch
            {
                handle.Dispose();
                throw;
            }
        }

        /// <summary>Creates keyed blackboard <paramref name="name"/> with <paramref name="keys"/>
        /// (1 to 4096 different keys, each 1 to 60 bytes of UTF-8 without control characters;
        /// their order is kept), each holding values of up to <paramref name="capacity"/>
        /// bytes and starting at version 0 with no value. The keys are fixed from then on.</summary>
        /// <exception cref="ShmbusException">Status <see cref="Status.Invalid"/> for an invalid
        /// key set (or name), <see cref="Status.Exists"/> when the name is taken.</exception>
        public static KeyedBlackboard Create(string name, IEnumerable<string> keys, int capacity, ShmbusOptions options = null)
        {
            return Make(Native.shmbus_keyed_blackboard_create_with, name, keys, capacity, options);
        }

        /// <summary>Opens keyed blackboard <paramref name="name"/>, with the keys and capacity it
        /// was created with.</summary>
        /// <exception cref="ShmbusNotFoundException">It does not exist.</exception>
        /// <exception cref="ShmbusException">Status <see cref="Status.Mismatch"/>: the object is
        /// a plain blackboard or another kind of object.</exception>
        public static KeyedBlackboard Open(string name, ShmbusOptions options = null)
        {
            KeyedBlackboardHandle h;
            using (var opts = ShmbusOptions.Build(options))
                ShmbusException.Check(Native.shmbus_keyed_blackboard_open_with(name, opts, out h));
            return new KeyedBlackboard(h, name);
        }

        /// <summary>Opens keyed blackboard <paramref name="name"/> if it exists, else creates it
        /// with <paramref name="keys"/> and <paramref name="capacity"/> (race-free). The keys
        /// must make a valid key set either way; an existing board keeps its own keys and
        /// capacity (see <see cref="Keys"/> and <see cref="Capacity"/>).</summary>
        public static KeyedBlackboard CreateOrOpen(string name, IEnumerable<string> keys, int capacity, ShmbusOptions options = null)
        {
            return Make(Native.shmbus_keyed_blackboard_create_or_open, name, keys, capacity, options);
        }

        /// <summary>The C signature both creating calls share.</summary>
        private delegate int CreateCall(string name, IntPtr[] keys, UIntPtr keyCount, UIntPtr capacity,
            OptionsHandle opts, out KeyedBlackboardHandle b);

        /// <summary>Create and CreateOrOpen: the key set passed as C strings (freed after the
        /// call), the status checked.</summary>
        private static KeyedBlackboard Make(CreateCall call, string name, IEnumerable<string> keys, int capacity, ShmbusOptions options)
        {
            if (capacity < 0) throw new ArgumentOutOfRangeException("capacity");
            IntPtr[] set = KeySet(keys);
            KeyedBlackboardHandle h;
            try
            {
                using (var opts = ShmbusOptions.Build(options))
                    ShmbusException.Check(call(name, set, (UIntPtr)(ulong)set.Length, (UIntPtr)(ulong)capacity, opts, out h));
            }
            finally
            {
                FreeKeySet(set);
            }
            return new KeyedBlackboard(h, name);
        }

        /// <summary>The board's name.</summary>
        public string Name { get { return name; } }

        /// <summary>The largest value of each key, in bytes.</summary>
        public int Capacity { get; private set; }

        /// <summary>The board's keys, in the order given when it was created.</summary>
        public IReadOnlyList<string> Keys { get { return keys; } }

        /// <summary>The version of <paramref name="key"/>'s current value: counts that key's
        /// writes (0: never written).</summary>
        /// <exception cref="ShmbusUnknownKeyException">The board has no such key.</exception>
        public long Version(string key)
        {
            var h = Handle;
            byte[] k = Lookup(key);
            ulong v;
            ShmbusException.Check(Native.shmbus_keyed_blackboard_version(h, k, out v), key);
            return (long)v;
        }

        /// <summary>Replaces the value of <paramref name="key"/> (readers see all of it or none
        /// of it) and wakes whoever waits for a new version of that key; returns the key's
        /// version read just after (another writer may have written since).</summary>
        /// <exception cref="ShmbusUnknownKeyException">The board has no such key.</exception>
        /// <exception cref="ShmbusException">Status <see cref="Status.TooLarge"/>: longer than
        /// <see cref="Capacity"/>.</exception>
        public long Write(string key, byte[] data)
        {
            if (data == null) throw new ArgumentNullException("data");
            return Write(key, new ReadOnlySpan<byte>(data));
        }

        /// <summary>Replaces the value of <paramref name="key"/> with the bytes of
        /// <paramref name="data"/>; returns the key's version read just after.</summary>
        /// <exception cref="ShmbusUnknownKeyException">The board has no such key.</exception>
        public unsafe long Write(string key, ReadOnlySpan<byte> data)
        {
            var h = Handle;
            byte[] k = Lookup(key);
            fixed (byte* p = &MemoryMarshal.GetReference(data))
                ShmbusException.Check(Native.shmbus_keyed_blackboard_write(h, k, p, (UIntPtr)(ulong)data.Length), key);
            return Version(key);
        }

        /// <summary>The current value of <paramref name="key"/>: exactly the bytes last written
        /// to it (empty before its first write).</summary>
        /// <exception cref="ShmbusUnknownKeyException">The board has no such key.</exception>
        public byte[] Read(string key)
        {
            long version;
            return Read(key, out version);
        }

        /// <summary>The current value of <paramref name="key"/> and its version.</summary>
        /// <exception cref="ShmbusUnknownKeyException">The board has no such key.</exception>
        public unsafe byte[] Read(string key, out long version)
        {
            var h = Handle;
            byte[] k = Lookup(key);
            var buf = new byte[Math.Max(Capacity, 1)];
            UIntPtr len;
            ulong v;
            fixed (byte* p = buf)
                ShmbusException.Check(Native.shmbus_keyed_blackboard_read(h, k, p, (UIntPtr)(ulong)buf.Length, out len, out v), key);
            version = (long)v;
            var value = new byte[(int)len.ToUInt64()];
            Buffer.BlockCopy(buf, 0, value, 0, value.Length);
            return value;
        }

        /// <summary>Waits until the version of <paramref name="key"/> is newer than
        /// <paramref name="version"/>: the new version, or null after
        /// <paramref name="timeout"/>. Writes of other keys do not end the wait.</summary>
        /// <exception cref="ShmbusUnknownKeyException">The board has no such key.</exception>
        public long? WaitNewer(string key, long version, TimeSpan timeout)
        {
            var h = Handle;
            byte[] k = Lookup(key);
            ulong newer;
            int rc = Native.shmbus_keyed_blackboard_wait_newer(h, k, (ulong)version, Native.Nanos(timeout), out newer);
            if (rc == (int)Status.Timeout) return null;
            ShmbusException.Check(rc, key);
            return (long)newer;
        }

        /// <summary>Calls <paramref name="handler"/> on a background thread with each value of
        /// <paramref name="key"/> written from now on (writes of other keys do not call it; a
        /// slow handler gets the newest value, and <see cref="Subscription.Skipped"/> counts
        /// the versions it never saw). Disposing the returned subscription, or
        /// <see cref="Dispose"/>, stops the thread and waits for it (from the handler's own
        /// callback that is refused with <see cref="InvalidOperationException"/>). An
        /// exception the handler throws goes to <see cref="ShmbusHandlers.Unhandled"/>.</summary>
        /// <exception cref="ShmbusUnknownKeyException">The board has no such key.</exception>
        public Subscription OnUpdate(string key, ReceivedEventHandler<byte[]> handler)
        {
            if (handler == null) throw new ArgumentNullException("handler");
            lock (gate)
            {
                if (disposed) throw new ObjectDisposedException("KeyedBlackboard " + name);
                var h = Handle;
                byte[] k = Lookup(key);
                ulong from = (ulong)Version(key);
                var s = new Subscription(this, key, StartHandler(name, h, k, key, from, handler));
                subscriptions.Add(s);
                return s;
            }
        }

        /// <summary>Stops every <see cref="OnUpdate"/> thread (waiting for a callback in
        /// progress) and closes the board (its creator's close removes it unless persistent).
        /// From a handler's own callback it is refused with
        /// <see cref="InvalidOperationException"/>, changing nothing. Twice is harmless.</summary>
        public void Dispose()
        {
            Subscription[] running;
            lock (gate)
            {
                running = new Subscription[subscriptions.Count];
                subscriptions.CopyTo(running);
            }
            // Refused before anything changes: a later Dispose from another thread still stops them.
            foreach (var s in running) s.Handler.RefuseOwnThread();
            foreach (var s in running) s.Handler.Dispose();
            var added = new List<Subscription>();
            lock (gate)
            {
                disposed = true;
                // Subscriptions added meanwhile by another thread are stopped too.
                foreach (var s in subscriptions)
                    if (Array.IndexOf(running, s) < 0) added.Add(s);
                subscriptions.Clear();
            }
            foreach (var s in added) s.Handler.Dispose();
            handle.Dispose();
        }

        /// <summary>A handler started by <see cref="OnUpdate"/>: disposing it stops its thread
        /// and waits for it.</summary>
        public sealed class Subscription : IDisposable
        {
            private readonly KeyedBlackboard board;

            internal Subscription(KeyedBlackboard board, string key, NativeHandler handler)
            {
                this.board = board;
                Key = key;
                Handler = handler;
            }

            internal NativeHandler Handler { get; private set; }

            /// <summary>The key whose values the handler gets.</summary>
            public string Key { get; private set; }

            /// <summary>Versions of <see cref="Key"/> the handler skipped because values were
            /// written faster than it ran.</summary>
            public long Skipped { get { return Interlocked.Read(ref Handler.Counted); } }

            /// <summary>Stops the handler's thread, waiting for a callback in progress (refused
            /// with <see cref="InvalidOperationException"/> from the handler's own callback,
            /// changing nothing). Twice is harmless.</summary>
            public void Dispose()
            {
                Handler.Dispose(); // throws, changing nothing, from the handler's own callback
                lock (board.gate) board.subscriptions.Remove(this);
            }
        }

        internal KeyedBlackboardHandle Handle
        {
            get
            {
                if (handle.IsClosed) throw new ObjectDisposedException("KeyedBlackboard " + name);
                return handle;
            }
        }

        /// <summary>The NUL-terminated UTF-8 form of <paramref name="key"/> to pass to the C
        /// API; a key that has none the library would take for it (a NUL inside, which C would
        /// cut the key at, or a lone surrogate) cannot be one of the board's keys.</summary>
        internal byte[] Lookup(string key)
        {
            if (key == null) throw new ArgumentNullException("key");
            byte[] k;
            if (keyBytes.TryGetValue(key, out k)) return k;
            k = KeyBytes(key);
            if (k == null)
                throw new ShmbusUnknownKeyException(key, "`" + name + "` has no key " + Quote(key) + " (" + WhyNot(key) +
                    "): its keys are fixed when it is created (KeyedBlackboard.Keys lists them)");
            return k;
        }

        /// <summary><paramref name="key"/> as NUL-terminated UTF-8, or null when it holds a NUL
        /// or a lone surrogate (no UTF-8 string C would read as this key).</summary>
        private static byte[] KeyBytes(string key)
        {
            if (key.IndexOf('\0') >= 0) return null;
            try
            {
                var bytes = new byte[StrictUtf8.GetByteCount(key) + 1];
                StrictUtf8.GetBytes(key, 0, key.Length, bytes, 0);
                return bytes;
            }
            catch (EncoderFallbackException)
            {
                return null;
            }
        }

        /// <summary>Why <paramref name="key"/> has no UTF-8 form (see <see cref="KeyBytes"/>).</summary>
        private static string WhyNot(string key)
        {
            return key.IndexOf('\0') >= 0 ? "it contains a control character, NUL" : "it is not valid UTF-8: it holds a lone surrogate";
        }

        /// <summary>A key as messages show it: quoted, control characters escaped.</summary>
        private static string Quote(string key)
        {
            var sb = new StringBuilder("\"");
            foreach (char c in key)
            {
                if (c == '"' || c == '\\') sb.Append('\\').Append(c);
                else if (char.IsControl(c) || char.IsSurrogate(c)) sb.Append("\\u").Append(((int)c).ToString("x4"));
                else sb.Append(c);
            }
            return sb.Append('"').ToString();
        }

        /// <summary>The key set of a create call as C strings (NULL for a null key, which the
        /// library refuses); free it with <see cref="FreeKeySet"/>.</summary>
        private static IntPtr[] KeySet(IEnumerable<string> keys)
        {
            if (keys == null) throw new ArgumentNullException("keys");
            var list = new List<string>(keys);
            var set = new IntPtr[list.Count];
            try
            {
                for (int i = 0; i < list.Count; i++)
                {
                    if (list[i] == null) continue;
                    byte[] k = KeyBytes(list[i]);
                    if (k == null)
                        throw new ShmbusException(Status.Invalid, "invalid configuration: key " + Quote(list[i]) + " " +
                            WhyNot(list[i]) + ": a key is 1 to 60 bytes of UTF-8 without control characters");
                    set[i] = Marshal.AllocHGlobal(k.Length);
                    Marshal.Copy(k, 0, set[i], k.Length);
                }
                return set;
            }
            catch
            {
                FreeKeySet(set);
                throw;
            }
        }

        private static void FreeKeySet(IntPtr[] set)
        {
            foreach (IntPtr p in set)
                if (p != IntPtr.Zero) Marshal.FreeHGlobal(p);
        }

        /// <summary>Starts a native update handler calling <paramref name="listener"/> with each
        /// value of <paramref name="key"/> after version <paramref name="from"/>; it counts
        /// skipped versions in its <see cref="NativeHandler.Counted"/>.</summary>
        private static NativeHandler StartHandler(string name, KeyedBlackboardHandle board, byte[] keyUtf8, string key,
                                                  ulong from, ReceivedEventHandler<byte[]> listener)
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
                    listener(value);
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
            ShmbusException.Check(Native.shmbus_keyed_blackboard_on_update(board, keyUtf8, from, cb, IntPtr.Zero, out hh), key);
            self.Attach(hh);
            return self;
        }
    }
}
