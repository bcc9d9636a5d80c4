// A two-way link between two processes.
using System;
using System.Runtime.InteropServices;
using System.Threading;

namespace Shmbus
{
    /// <summary>A message received on a <see cref="Duplex"/>.</summary>
    public struct DuplexMessage
    {
        /// <summary>The payload.</summary>
        public byte[] Data;
        /// <summary>Non-zero when the peer waits for a <see cref="Duplex.Reply"/> to it.</summary>
        public ulong RequestId;
    }

    /// <summary>
    /// One end of a two-way link (two back-pressure channels, one per direction): a server
    /// <see cref="Listen"/>s, one client <see cref="Connect(string, ShmbusOptions)"/>s. Either end sends and
    /// receives; a client's <see cref="Request"/> waits for the server's reply. Use from one
    /// thread at a time.
    /// </summary>
    public sealed class Duplex : IDisposable
    {
        private readonly DuplexHandle handle;
        private readonly string name;
        private byte[] scratch = new byte[4096];

        private Duplex(DuplexHandle handle, string name)
        {
            this.handle = handle;
            this.name = name;
        }

        /// <summary>Starts the server end of link <paramref name="name"/>.</summary>
        public static Duplex Listen(string name, ShmbusOptions options = null)
        {
            DuplexHandle h;
            using (var opts = ShmbusOptions.Build(options))
                ShmbusException.Check(Native.shmbus_duplex_listen(name, opts, out h));
            return new Duplex(h, name);
        }

        /// <summary>Connects to the server of link <paramref name="name"/>.</summary>
        public static Duplex Connect(string name, ShmbusOptions options = null)
        {
            DuplexHandle h;
            using (var opts = ShmbusOptions.Build(options))
                ShmbusException.Check(Native.shmbus_duplex_connect(name, opts, out h));
            return new Duplex(h, name);
        }

        /// <summary>Connects to the server of link <paramref name="name"/>, waiting at most
        /// <paramref name="timeout"/> for it to listen and for another connected client to
        /// leave (even one killed); then <see cref="ShmbusNotFoundException"/>, or a
        /// <see cref="ShmbusException"/> whose status is <c>Status.Exists</c>. No polling: it watches the link's files.</summary>
        public static Duplex Connect(string name, TimeSpan timeout, ShmbusOptions options = null)
        {
            DuplexHandle h;
            long ns = Native.Nanos(timeout);
            using (var opts = ShmbusOptions.Build(options))
                ShmbusException.Check(Native.shmbus_duplex_connect_timeout(name, opts, ns, out h));
            return new Duplex(h, name);
        }

        /// <summary>The link's name.</summary>
        public string Name { get { return name; } }

        /// <summary>Sends <paramref name="data"/> to the other end (no reply expected).</summary>
        public unsafe void Send(byte[] data)
        {
            if (data == null) throw new ArgumentNullException("data");
            fixed (byte* p = data)
                ShmbusException.Check(Native.shmbus_duplex_send(Handle, p, (UIntPtr)(ulong)data.Length));
        }

        /// <summary>The next message or request, waiting at most <paramref name="timeout"/>.</summary>
        public unsafe DuplexMessage Receive(TimeSpan timeout)
        {
            var h = Handle;
            long ns = Native.Nanos(timeout);
            while (true)
            {
                UIntPtr len;
                ulong request;
                int rc;
                fixed (byte* p = scratch)
                    rc = Native.shmbus_duplex_recv(h, p, (UIntPtr)(ulong)scratch.Length, out len, out request, ns);
                if (rc == (int)Status.TooSmall)
                {
                    scratch = new byte[(int)len.ToUInt64()];
                    continue;
                }
                ShmbusException.Check(rc);
                var data = new byte[(int)len.ToUInt64()];
                Buffer.BlockCopy(scratch, 0, data, 0, data.Length);
                return new DuplexMessage { Data = data, RequestId = request };
            }
        }

        /// <summary>The next message or request, waiting as long as it takes.</summary>
        public DuplexMessage Receive() { return Receive(Timeout.InfiniteTimeSpan); }

        /// <summary>Answers request <paramref name="requestId"/> (from <see cref="Receive()"/>).</summary>
        public unsafe void Reply(ulong requestId, byte[] data)
        {
            if (data == null) throw new ArgumentNullException("data");
            fixed (byte* p = data)
                ShmbusException.Check(Native.shmbus_duplex_reply(Handle, requestId, p, (UIntPtr)(ulong)data.Length));
        }

        /// <summary>Sends a request and waits at most <paramref name="timeout"/> in all for
        /// its reply. Messages that arrive meanwhile are kept for <see cref="Receive()"/>.</summary>
        public unsafe byte[] Request(byte[] data, TimeSpan timeout)
        {
            if (data == null) throw new ArgumentNullException("data");
            var h = Handle;
            UIntPtr len;
            int rc;
            fixed (byte* p = data)
            fixed (byte* r = scratch)
                rc = Native.shmbus_duplex_request(h, p, (UIntPtr)(ulong)data.Length, r, (UIntPtr)(ulong)scratch.Length, out len, Native.Nanos(timeout));
            if (rc == (int)Status.TooSmall)
            {
                scratch = new byte[(int)len.ToUInt64()];
                fixed (byte* r = scratch)
                    rc = Native.shmbus_duplex_take_reply(h, r, (UIntPtr)(ulong)scratch.Length, out len);
            }
            ShmbusException.Check(rc);
            var reply = new byte[(int)len.ToUInt64()];
            Buffer.BlockCopy(scratch, 0, reply, 0, reply.Length);
            return reply;
        }

        /// <summary>Closes this end (the peer sees the end of the stream).</summary>
        public void Dispose() { handle.Dispose(); }

        private DuplexHandle Handle
        {
            get
            {
                if (handle.IsClosed) throw new ObjectDisposedException("Duplex " + name);
                return handle;
            }
        }
    }
}
