// A named block of bytes, and a System.IO.Stream over it.
using System;
using System.IO;

namespace Shmbus
{
    /// <summary>
    /// A named block of shared bytes with no protocol of its own (readers and writers agree
    /// on their own synchronisation). <see cref="Stream"/> gives a seekable stream over it.
    /// Reads and writes are bounds-checked by the library, and may come from several threads
    /// (each is one copy; nothing orders them).
    /// </summary>
    public sealed class Segment : IDisposable
    {
        private readonly SegmentHandle handle;
        private readonly string name;

        private Segment(SegmentHandle handle, string name)
        {
            this.handle = handle;
            this.name = name;
            Size = (long)Native.shmbus_segment_size(handle).ToUInt64();
        }

        /// <summary>Creates segment <paramref name="name"/> of <paramref name="size"/> zero bytes.</summary>
        public static Segment Create(string name, long size, ShmbusOptions options = null)
        {
            if (size < 0) throw new ArgumentOutOfRangeException("size");
            SegmentHandle h;
            using (var opts = ShmbusOptions.Build(options))
                ShmbusException.Check(Native.shmbus_segment_create(name, (UIntPtr)(ulong)size, opts, out h));
            return new Segment(h, name);
        }

        /// <summary>Opens segment <paramref name="name"/>.</summary>
        public static Segment Open(string name, ShmbusOptions options = null)
        {
            SegmentHandle h;
            using (var opts = ShmbusOptions.Build(options))
                ShmbusException.Check(Native.shmbus_segment_open(name, opts, out h));
            return new Segment(h, name);
        }

        /// <summary>Opens segment <paramref name="name"/> if it exists, else creates it.</summary>
        public static Segment CreateOrOpen(string name, long size, ShmbusOptions options = null)
        {
            for (int attempt = 0; ; attempt++)
            {
                try { return Open(name, options); }
                catch (ShmbusNotFoundException) { }
                try { return Create(name, size, options); }
                catch (ShmbusException e)
                {
                    // Another process created it between our open and our create.
                    if (e.Status != Status.Exists || attempt > 3) throw;
                }
            }
        }

        /// <summary>The segment's name.</summary>
        public string Name { get { return name; } }

        /// <summary>Its size in bytes.</summary>
        public long Size { get; private set; }

        /// <summary>Copies <paramref name="count"/> bytes at <paramref name="offset"/> into
        /// <paramref name="buffer"/> from <paramref name="index"/>.</summary>
        public unsafe void Read(long offset, byte[] buffer, int index, int count)
        {
            CheckRange(buffer, index, count);
            fixed (byte* p = buffer)
                ShmbusException.Check(Native.shmbus_segment_read(Handle, (UIntPtr)(ulong)offset, p + index, (UIntPtr)(ulong)count));
        }

        /// <summary>Copies <paramref name="count"/> bytes of <paramref name="buffer"/> from
        /// <paramref name="index"/> to <paramref name="offset"/>.</summary>
        public unsafe void Write(long offset, byte[] buffer, int index, int count)
        {
            CheckRange(buffer, index, count);
            fixed (byte* p = buffer)
                ShmbusException.Check(Native.shmbus_segment_write(Handle, (UIntPtr)(ulong)offset, p + index, (UIntPtr)(ulong)count));
        }

        /// <summary>A new seekable stream over the segment, from offset 0.</summary>
        public Stream OpenStream() { return new SegmentStream(this); }

        /// <summary>Closes the segment (its creator's close removes it unless persistent).</summary>
        public void Dispose() { handle.Dispose(); }

        private SegmentHandle Handle
        {
            get
            {
                if (handle.IsClosed) throw new ObjectDisposedException("Segment " + name);
                return handle;
            }
        }

        private static void CheckRange(byte[] buffer, int index, int count)
        {
            if (buffer == null) throw new ArgumentNullException("buffer");
            if (index < 0 || count < 0 || index > buffer.Length - count)
                throw new ArgumentOutOfRangeException("index", "index and count must lie within the buffer");
        }
    }

    /// <summary>A <see cref="System.IO.Stream"/> over a <see cref="Segment"/>: readable,
    /// writable and seekable, of the segment's fixed length. One position: use a stream from
    /// one thread at a time (open one per thread).</summary>
    public sealed class SegmentStream : Stream
    {
        private readonly Segment segment;
        private long position;

        internal SegmentStream(Segment segment) { this.segment = segment; }

        /// <summary>True.</summary>
        public override bool CanRead { get { return true; } }
        /// <summary>True.</summary>
        public override bool CanSeek { get { return true; } }
        /// <summary>True.</summary>
        public override bool CanWrite { get { return true; } }
        /// <summary>The segment's size (fixed).</summary>
        public override long Length { get { return segment.Size; } }

        /// <summary>The offset of the next read or write.</summary>
        public override long Position
        {
            get { return position; }
            set
            {
                if (value < 0) throw new ArgumentOutOfRangeException("value");
                position = value;
            }
        }

        /// <summary>Reads up to <paramref name="count"/> bytes (fewer at the end; 0 past it).</summary>
        public override int Read(byte[] buffer, int offset, int count)
        {
            long left = Math.Max(0, segment.Size - position);
            int n = (int)Math.Min(count, left);
            if (n == 0) return 0;
            segment.Read(position, buffer, offset, n);
            position += n;
            return n;
        }

        /// <summary>Writes <paramref name="count"/> bytes; the segment does not grow, so a
        /// write past its end throws <see cref="IOException"/> and writes nothing.</summary>
        public override void Write(byte[] buffer, int offset, int count)
        {
            if (position + count > segment.Size)
                throw new IOException("writing " + count + " bytes at " + position + " would pass the end of segment " +
                                      segment.Name + " (" + segment.Size + " bytes): segments have a fixed size");
            segment.Write(position, buffer, offset, count);
            position += count;
        }

        /// <summary>Moves the position; past the end is allowed (reads there return 0 bytes).</summary>
        public override long Seek(long offset, SeekOrigin origin)
        {
            long target;
            switch (origin)
            {
                case SeekOrigin.Begin: target = offset; break;
                case SeekOrigin.Current: target = position + offset; break;
                default: target = segment.Size + offset; break;
            }
            if (target < 0) throw new IOException("cannot seek before the start of the segment");
            position = target;
            return position;
        }

        /// <summary>Not supported: a segment has a fixed size.</summary>
        public override void SetLength(long value)
        {
            throw new NotSupportedException("a segment has a fixed size");
        }

        /// <summary>Nothing to do: writes go straight to shared memory.</summary>
        public override void Flush() { }
    }
}
