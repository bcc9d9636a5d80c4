// Status codes and exceptions: every failing call throws a ShmbusException carrying the
// library's status and its message (which says what to do).
using System;

namespace Shmbus
{
    /// <summary>The C API's status codes (shmbus.h, <c>enum shmbus_status</c>).</summary>
    public enum Status
    {
        Ok = 0,
        Invalid = -1,
        Timeout = -2,
        Empty = -3,
        Full = -4,
        Lagged = -5,
        Disconnected = -6,
        PublisherGone = -7,
        NotFound = -8,
        Exists = -9,
        Permission = -10,
        Corrupt = -11,
        TooSmall = -12,
        TooLarge = -13,
        Mismatch = -14,
        Version = -15,
        NoSlot = -16,
        WrongMode = -17,
        WriterDied = -18,
        Busy = -19,
        NoSpace = -20,
        ForeignProcess = -21,
        NoLoan = -22,
        Handler = -23,
        Os = -24,
        Internal = -25,
    }

    /// <summary>A failed shmbus call: <see cref="Status"/> says which failure, the message
    /// what to do.</summary>
    public class ShmbusException : Exception
    {
        /// <summary>The status the library returned.</summary>
        public Status Status { get; private set; }

        public ShmbusException(Status status, string message) : base(message) { Status = status; }

        /// <summary>The exception for <paramref name="rc"/>, with this thread's last error
        /// message.</summary>
        internal static ShmbusException From(int rc)
        {
            string message = Native.Utf8(Native.shmbus_last_error());
            if (message.Length == 0) message = Native.Utf8(Native.shmbus_status_name(rc));
            var status = (Status)rc;
            switch (status)
            {
                case Status.Timeout: return new ShmbusTimeoutException(message);
                case Status.Disconnected: return new ShmbusDisconnectedException(message);
                case Status.PublisherGone:
                case Status.WriterDied: return new ShmbusPublisherGoneException(status, message);
                case Status.NotFound: return new ShmbusNotFoundException(message);
                case Status.Permission: return new ShmbusPermissionException(message);
                default: return new ShmbusException(status, message);
            }
        }

        /// <summary>Throws for a negative status; returns a non-negative one.</summary>
        internal static int Check(int rc)
        {
            if (rc < 0) throw From(rc);
            return rc;
        }
    }

    /// <summary>A wait ran out of time.</summary>
    public class ShmbusTimeoutException : ShmbusException
    {
        public ShmbusTimeoutException(string message) : base(Status.Timeout, message) { }
    }

    /// <summary>The publisher closed the channel and every message has been received (the
    /// end of the stream), or the duplex peer closed its end.</summary>
    public class ShmbusDisconnectedException : ShmbusException
    {
        public ShmbusDisconnectedException(string message) : base(Status.Disconnected, message) { }
    }

    /// <summary>The publisher (or a blackboard's writer) died without closing: it crashed
    /// or was killed.</summary>
    public class ShmbusPublisherGoneException : ShmbusException
    {
        public ShmbusPublisherGoneException(Status status, string message) : base(status, message) { }
    }

    /// <summary>No object of that name exists; the message names it.</summary>
    public class ShmbusNotFoundException : ShmbusException
    {
        public ShmbusNotFoundException(string message) : base(Status.NotFound, message) { }
    }

    /// <summary>The operating system refused access, or the object's owner is not trusted
    /// (see <see cref="ShmbusOptions.AllowOwner"/>).</summary>
    public class ShmbusPermissionException : ShmbusException
    {
        public ShmbusPermissionException(string message) : base(Status.Permission, message) { }
    }

    /// <summary>A receive handler's callback threw; raised by <see cref="ShmbusHandlers.Unhandled"/>
    /// listeners' argument.</summary>
    public sealed class HandlerFailedEventArgs : EventArgs
    {
        /// <summary>The object whose handler failed (its name).</summary>
        public string Name { get; private set; }
        /// <summary>What the callback threw.</summary>
        public Exception Exception { get; private set; }

        internal HandlerFailedEventArgs(string name, Exception exception)
        {
            Name = name;
            Exception = exception;
        }
    }

    /// <summary>Where exceptions thrown by receive-handler callbacks go. A callback runs on a
    /// background thread the library owns, so its exception cannot reach the caller: it is
    /// passed to <see cref="Unhandled"/> (or written to standard error when nobody
    /// listens), and the handler goes on with the next value.</summary>
    public static class ShmbusHandlers
    {
        /// <summary>Raised on the handler's thread for each exception a callback throws.</summary>
        public static event EventHandler<HandlerFailedEventArgs> Unhandled;

        internal static void Report(string name, Exception e)
        {
            var listeners = Unhandled;
            if (listeners != null)
            {
                try { listeners(null, new HandlerFailedEventArgs(name, e)); return; }
                catch (Exception inner) { e = new AggregateException(e, inner); }
            }
            Console.Error.WriteLine("shmbus: the receive handler of " + name + " threw: " + e);
        }
    }

    /// <summary>The handler delegate of the original design: called with the data received.</summary>
    public delegate void ReceivedEventHandler<T>(T data);
}
