// The original design's class, on shmbus.
using System;
using System.IO;

namespace Shmbus
{
    /// <summary>
    /// The class the original Windows/.NET design is built around: a named shared-memory
    /// object that one program writes and others read, with a receive handler raised on a
    /// background thread, and a stream. Every process that uses the object constructs it
    /// with the same name and size; the first creates it. Unlike a Windows mapping, which
    /// lives while any handle is open, the name goes away when its creator disposes it
    /// (processes that have it open keep working, but a process that constructs it later
    /// creates a new one): start the longest-lived side first, or pass
    /// <c>new ShmbusOptions { Persistent = true }</c> (and remove it with <c>shmbus rm</c>).
    /// Safe to use from several threads, except <see cref="Stream"/>, whose position is
    /// shared.
    /// <para>What changed underneath: the value lives in a <see cref="Blackboard"/>, so a
    /// reader never sees half a write (the original had no synchronisation) and gets exactly
    /// the bytes written (the original lost the length and read the whole region); its
    /// version word is the event the handler waits on, a futex that wakes every reader
    /// (the original's manual-reset event could be reset by one reader before the others
    /// woke); errors are exceptions (the original swallowed them); and <see cref="Dispose"/>
    /// stops the handler by joining its thread (the original slept 100 ms).</para>
    /// </summary>
    public sealed class SharedMemory : IDisposable
    {
        private readonly Blackboard board;
        private readonly string name;
        private readonly uint size;
        private readonly ShmbusOptions options;
        private readonly object gate = new object();
        private NativeHandler handler;
        private ReceivedEventHandler<byte[]> receiveHandler;
        private Segment segment;
        private Stream stream;
        private bool disposed;

        /// <summary>Creates shared-memory object <paramref name="name"/> for values of up to
        /// <paramref name="size"/> bytes, or opens it if another process created it.</summary>
        public SharedMemory(string name, uint size, ShmbusOptions options = null)
        {
            if (name == null) throw new ArgumentNullException("name");
            if (size > int.MaxValue) throw new ArgumentOutOfRangeException("size");
            this.name = name;
            this.size = size;
            this.options = options;
            board = Blackboard.CreateOrOpen(name, (int)size, options);
        }

        /// <summary>The object's name.</summary>
        public string Name { get { return name; } }

        /// <summary>The largest value, in bytes.</summary>
        public int Size { get { return board.Capacity; } }

        /// <summary>The version of the current value (counts writes; 0 before the first).</summary>
        public long Version { get { return board.Version; } }

        /// <summary>Replaces the value; readers see all of it or none of it, and every
        /// <see cref="ReceiveHandler"/> is raised.</summary>
        public void Write(byte[] data) { board.Write(data); }

        /// <summary>The current value: exactly the bytes last written.</summary>
        public byte[] Read() { return board.Read(); }

        /// <summary>
        /// Raised on a background thread with each value written after the first handler was
        /// added, in order; a handler slower than the writer gets the newest value and
        /// <see cref="Skipped"/> counts the versions it never saw. <see cref="Dispose"/>
        /// stops the thread and waits for it.
        /// </summary>
        public event ReceivedEventHandler<byte[]> ReceiveHandler
        {
            add
            {
                lock (gate)
                {
                    if (disposed) throw new ObjectDisposedException("SharedMemory " + name);
                    receiveHandler += value;
                    if (handler == null)
                        handler = Blackboard.StartHandler(name, board.Handle, (ulong)board.Version, () => receiveHandler);
                }
            }
            remove { lock (gate) { receiveHandler -= value; } }
        }

        /// <summary>Versions the <see cref="ReceiveHandler"/> thread skipped.</summary>
        public long Skipped
        {
            get
            {
                var h = handler;
                return h == null ? 0 : System.Threading.Interlocked.Read(ref h.Counted);
            }
        }

        /// <summary>A stream over a shared segment of <see cref="Size"/> bytes named
        /// <c>NAME.stream</c> (created or opened on first use): the original class's stream
        /// view, for programs that exchange bytes at fixed offsets.</summary>
        public Stream Stream
        {
            get
            {
                lock (gate)
                {
                    if (stream == null)
                    {
                        segment = Segment.CreateOrOpen(name + ".stream", size, options);
                        stream = segment.OpenStream();
                    }
                    return stream;
                }
            }
        }

        /// <summary>Stops the receive-handler thread (joining it: a callback in progress
        /// completes first) and closes everything; the creator's close removes the object.</summary>
        public void Dispose()
        {
            NativeHandler h;
            lock (gate) { h = handler; }
            if (h != null) h.Dispose(); // throws, changing nothing, from the handler's own callback
            lock (gate)
            {
                disposed = true;
                if (handler != null && handler != h) handler.Dispose();
            }
            board.Dispose();
            lock (gate)
            {
                if (segment != null) segment.Dispose();
            }
        }
    }
}
