// A broadcast channel's writing end.
using System;
using System.Runtime.InteropServices;
using System.Threading;

namespace Shmbus
{
    /// <summary>
    /// The one writer of a broadcast channel: every subscriber receives every message, in
    /// order. Lossy (the default) never waits: a subscriber that falls a whole ring behind
    /// loses the oldest messages and is told how many. Back-pressure never loses: a send
    /// waits for the slowest subscriber. Use from one thread at a time (its properties too);
    /// only <see cref="Dispose"/> may come from another thread, and it does not interrupt a
    /// blocking send there (the close happens when that call returns).
    /// </summary>
    public sealed class Publisher : IDisposable
    {
        private readonly PublisherHandle handle;
        private readonly string name;

        /// <summary>Creates channel <paramref name="name"/> and becomes its publisher.
        /// <paramref name="capacity"/> (ring bytes) is a power of two; 0 keeps each default.</summary>
        public Publisher(string name, bool backpressure = false, int capacity = 0, int maxMessage = 0,
                         int maxSubscribers = 0, ShmbusOptions options = null)
        {
            if (name == null) throw new ArgumentNullException("name");
            if (capacity < 0 || maxMessage < 0 || maxSubscribers < 0)
                throw new ArgumentOutOfRangeException("capacity", "sizes and counts are >= 0 (0: the default)");
            Native.ChannelConfig cfg;
            Native.shmbus_channel_config_default(out cfg);
            // With a ring size, the largest message that fits it (as the C and Rust APIs do).
            if (capacity > 0) Native.shmbus_channel_config_with_capacity(out cfg, (UIntPtr)(ulong)capacity);
            if (maxMessage > 0) cfg.MaxMessage = (UIntPtr)(ulong)maxMessage;
            if (maxSubscribers > 0) cfg.MaxSubscribers = (UIntPtr)(ulong)maxSubscribers;
            cfg.Mode = backpressure ? 1 : 0;
            using (var opts = ShmbusOptions.Build(options))
                ShmbusException.Check(Native.shmbus_publisher_create_with(name, ref cfg, opts, out handle));
            this.name = name;
        }

        private Publisher(PublisherHandle handle, string name)
        {
            this.handle = handle;
            this.name = name;
        }

        /// <summary>Becomes the publisher of an existing channel whose publisher has gone.</summary>
        public static Publisher Open(string name, ShmbusOptions options = null)
        {
            PublisherHandle h;
            using (var opts = ShmbusOptions.Build(options))
                ShmbusException.Check(Native.shmbus_publisher_open(name, opts, out h));
            return new Publisher(h, name);
        }

        /// <summary>The channel's name.</summary>
        public string Name { get { return name; } }

        /// <summary>Subscribers attached now.</summary>
        public int SubscriberCount { get { return (int)Native.shmbus_publisher_subscriber_count(Handle).ToUInt64(); } }

        /// <summary>Messages published so far.</summary>
        public long Published { get { return (long)Native.shmbus_publisher_published(Handle); } }

        /// <summary>Whether this is a back-pressure channel.</summary>
        public bool Backpressure { get { return Config().Mode == 1; } }

        /// <summary>The ring's size in bytes.</summary>
        public int Capacity { get { return (int)Config().Capacity.ToUInt64(); } }

        /// <summary>The largest message, in bytes.</summary>
        public int MaxMessage { get { return (int)Config().MaxMessage.ToUInt64(); } }

        /// <summary>Publishes <paramref name="data"/>; back-pressure: waits for room as long
        /// as it takes.</summary>
        public void Send(byte[] data)
        {
            if (data == null) throw new ArgumentNullException("data");
            Send(new ReadOnlySpan<byte>(data), Timeout.InfiniteTimeSpan);
        }

        /// <summary>Publishes <paramref name="data"/>, waiting at most <paramref name="timeout"/>
        /// for room (<see cref="ShmbusTimeoutException"/>).</summary>
        public void Send(byte[] data, TimeSpan timeout)
        {
            if (data == null) throw new ArgumentNullException("data");
            Send(new ReadOnlySpan<byte>(data), timeout);
        }

        /// <summary>Publishes the bytes of <paramref name="data"/>, waiting at most
        /// <paramref name="timeout"/> for room.</summary>
        public unsafe void Send(ReadOnlySpan<byte> data, TimeSpan timeout)
        {
            long ns = Native.Nanos(timeout);
            fixed (byte* p = &MemoryMarshal.GetReference(data))
                ShmbusException.Check(Native.shmbus_publisher_send_timeout(Handle, p, (UIntPtr)(ulong)data.Length, ns));
        }

        /// <summary>Publishes <paramref name="data"/> if there is room now: false when the
        /// ring is full (back-pressure).</summary>
        public unsafe bool TrySend(byte[] data)
        {
            if (data == null) throw new ArgumentNullException("data");
            fixed (byte* p = data)
            {
                int rc = Native.shmbus_publisher_send_timeout(Handle, p, (UIntPtr)(ulong)data.Length, 0);
                if (rc == (int)Status.Full || rc == (int)Status.Timeout) return false;
                ShmbusException.Check(rc);
                return true;
            }
        }

        /// <summary>Zero-copy send: <paramref name="fill"/> writes the message in place in
        /// the ring (a span of exactly <paramref name="size"/> bytes), then it is published.
        /// If <paramref name="fill"/> throws, nothing is published.</summary>
        public unsafe void Loan(int size, SpanWriter fill, TimeSpan timeout)
        {
            if (fill == null) throw new ArgumentNullException("fill");
            if (size < 0) throw new ArgumentOutOfRangeException("size");
            var h = Handle;
            IntPtr buf;
            ShmbusException.Check(Native.shmbus_publisher_loan_timeout(h, (UIntPtr)(ulong)size, out buf, Native.Nanos(timeout)));
            // The mapping must outlive the span: a Dispose meanwhile takes effect afterwards.
            bool added = false;
            h.DangerousAddRef(ref added);
            busyThread = Thread.CurrentThread.ManagedThreadId;
            try
            {
                try
                {
                    fill(new Span<byte>((void*)buf, size));
                }
                catch
                {
                    Native.shmbus_publisher_discard(h);
                    throw;
                }
                busyThread = -1;
                ShmbusException.Check(Native.shmbus_publisher_commit(h));
            }
            finally
            {
                busyThread = -1;
                if (added) h.DangerousRelease();
            }
        }

        /// <summary><see cref="Loan(int, SpanWriter, TimeSpan)"/> waiting for room as long as
        /// it takes.</summary>
        public void Loan(int size, SpanWriter fill) { Loan(size, fill, Timeout.InfiniteTimeSpan); }

        /// <summary>Waits until at least <paramref name="count"/> subscribers are attached;
        /// false after <paramref name="timeout"/>. Every subscriber's attach wakes the wait:
        /// no polling.</summary>
        public bool WaitForSubscribers(int count, TimeSpan timeout)
        {
            if (count < 0) throw new ArgumentOutOfRangeException("count", "a count is >= 0");
            int rc = Native.shmbus_publisher_wait_subscribers(Handle, new UIntPtr((uint)count), Native.Nanos(timeout));
            if (rc == (int)Status.Timeout) return false;
            ShmbusException.Check(rc);
            return true;
        }

        /// <summary>Ends the stream (subscribers get the end after the last message) and, if
        /// this publisher created the channel, removes it unless persistent.</summary>
        public void Dispose()
        {
            if (busyThread == Thread.CurrentThread.ManagedThreadId)
                throw new InvalidOperationException("a publisher cannot be disposed from its own Loan writer");
            handle.Dispose();
        }

        private PublisherHandle Handle
        {
            get
            {
                if (handle.IsClosed) throw new ObjectDisposedException("Publisher " + name);
                if (busyThread == Thread.CurrentThread.ManagedThreadId)
                    throw new InvalidOperationException("publisher " + name + " is lending a message to a Loan " +
                                                        "writer: return from the writer first");
                return handle;
            }
        }

        // The thread running a Loan writer (which must not send or dispose meanwhile).
        private int busyThread = -1;

        private Native.ChannelConfig Config()
        {
            Native.ChannelConfig cfg;
            ShmbusException.Check(Native.shmbus_publisher_config(Handle, out cfg));
            return cfg;
        }
    }

    /// <summary>Writes a loaned message in place (see <see cref="Publisher.Loan(int, SpanWriter)"/>).</summary>
    public delegate void SpanWriter(Span<byte> message);

    /// <summary>Reads a borrowed message in place (see <see cref="Subscriber.ReceiveRef(SpanReader)"/>);
    /// the span is valid only during the call.</summary>
    public delegate void SpanReader(ReadOnlySpan<byte> message);
}
