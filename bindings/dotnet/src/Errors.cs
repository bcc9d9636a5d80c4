// Status codes and exceptions: every failing call throws a ShmbusException carrying the
// library's status and its message (which says what to do).
using System;

namespace Shmbus
{
    /// <summary>The C API's status codes (shmbus.h, <c>enum shmbus_status</c>).</summary>
    public enum Status
    {
        /// <summary>Success.</summary>
        Ok = 0,
        /// <summary>An invalid argument (NULL, a bad handle, a bad size).</summary>
        Invalid = -1,
        /// <summary>A wait ran out of time.</summary>
        Timeout = -2,
        /// <summary>No message is waiting (a receive that does not wait).</summary>
        Empty = -3,
        /// <summary>The ring has no room now (a send that does not wait).</summary>
        Full = -4,
        /// <summary>Messages were lost before the next one (lossy channels).</summary>
        Lagged = -5,
        /// <summary>The end of the stream.</summary>
        Disconnected = -6,
        /// <summary>The publisher died.</summary>
        PublisherGone = -7,
        /// <summary>No object of that name.</summary>
        NotFound = -8,
        /// <summary>The name is taken.</summary>
        Exists = -9,
        /// <summary>Access refused by the OS, or an untrusted owner.</summary>
        Permission = -10,
        /// <summary>The object is not valid shmbus memory.</summary>
        Corrupt = -11,
        /// <summary>The buffer is too small (the size needed is reported).</summary>
        TooSmall = -12,
        /// <summary>The data is larger than the object allows.</summary>
        TooLarge = -13,
        /// <summary>An existing object has another configuration.</summary>
        Mismatch = -14,
        /// <summary>Made by an incompatible shmbus version.</summary>
        Version = -15,
        /// <summary>Every subscriber slot is taken.</summary>
        NoSlot = -16,
        /// <summary>The call needs the other channel mode.</summary>
        WrongMode = -17,
        /// <summary>A blackboard writer died mid-write (the next write repairs it).</summary>
        WriterDied = -18,
        /// <summary>Another writer held the object too long.</summary>
        Busy = -19,
        /// <summary>The shared-memory file system is full.</summary>
        NoSpace = -20,
        /// <summary>The handle belongs to another process (a fork parent).</summary>
        ForeignProcess = -21,
        /// <summary>No loan (or kept reply) to act on.</summary>
        NoLoan = -22,
        /// <summary>A receive handler failed.</summary>
        Handler = -23,
        /// <summary>Another operating-system error.</summary>
        Os = -24,
        /// <summary>A bug in shmbus.</summary>
        Internal = -25,
        /// <summary>A keyed blackboard has no such key (its keys are fixed at creation).</summary>
        UnknownKey = -26,
    }

    /// <summary>A failed shmbus call: <see cref="Status"/> says which failure, the message
    /// what to do.</summary>
    public class ShmbusException : Exception
    {
        /// <summary>The status the library returned.</summary>
        public Status Status { get; private set; }

        /// <summary>An exception for <paramref name="status"/> with <paramref name="message"/>.</summary>
        public ShmbusException(Status status, string message) : base(message) { Status = status; }

        /// <summary>The exception for <paramref name="rc"/>, with this thread's last error
        /// message.</summary>
        internal static ShmbusException From(int rc) { return From(rc, null); }

        /// <summary>The exception for <paramref name="rc"/> of a call about keyed-blackboard
        /// key <paramref name="key"/> (which an unknown-key exception carries).</summary>
        internal static ShmbusException From(int rc, string key)
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
                case Status.UnknownKey: return new ShmbusUnknownKeyException(key, message);
                default: return new ShmbusException(status, message);
            }
        }

        /// <summary>Throws for a negative status; returns a non-negative one.</summary>
        internal static int Check(int rc)
        {
            if (rc < 0) throw From(rc);
            return rc;
        }

        /// <summary>Throws for a negative status of a call about key <paramref name="key"/>;
        /// returns a non-negative one.</summary>
        internal static int Check(int rc, string key)
        {
            if (rc < 0) throw From(rc, key);
            return rc;
        }
    }

    /// <summary>A wait ran out of time.</summary>
    public class ShmbusTimeoutException : ShmbusException
    {
        /// <summary>The exception with the library's <paramref name="message"/>.</summary>
        public ShmbusTimeoutException(string message) : base(Status.Timeout, message) { }
    }

    /// <summary>The publisher closed the channel and every message has been received (the
    /// end of the stream), or the duplex peer closed its end.</summary>
    public class ShmbusDisconnectedException : ShmbusException
    {
        /// <summary>The exception with the library's <paramref name="message"/>.</summary>
        public ShmbusDisconnectedException(string message) : base(Status.Disconnected, message) { }
    }

    /// <summary>The publisher (or a blackboard's writer) died without closing: it crashed
    /// or was killed.</summary>
    public class ShmbusPublisherGoneException : ShmbusException
    {
        /// <summary>The exception with the library's <paramref name="message"/>.</summary>
        public ShmbusPublisherGoneException(Status status, string message) : base(status, message) { }
    }

    /// <summary>No object of that name exists; the message names it.</summary>
    public class ShmbusNotFoundException : ShmbusException
    {
        /// <summary>The exception with the library's <paramref name="message"/>.</summary>
        public ShmbusNotFoundException(string message) : base(Status.NotFound, message) { }
    }

    /// <summary>The operating system refused access, or the object's owner is not trusted
    /// (see <see cref="ShmbusOptions.AllowOwner"/>).</summary>
    public class ShmbusPermissionException : ShmbusException
    {
        /// <summary>The exception with the library's <paramref name="message"/>.</summary>
        public ShmbusPermissionException(string message) : base(Status.Permission, message) { }
    }

    /// <summary>A keyed blackboard has no such key (its keys are fixed when it is created;
    /// <see cref="KeyedBlackboard.Keys"/> lists them). <see cref="Key"/> is the key asked
    /// for; the message names it and the board.</summary>
    public class ShmbusUnknownKeyException : ShmbusException
    {
        /// <summary>The key asked for (null only when the library reported an unknown key
        /// for a call that named none).</summary>
        public string Key { get; private set; }

        /// <summary>The exception for <paramref name="key"/> with the library's
        /// <paramref name="message"/>.</summary>
        public ShmbusUnknownKeyException(string key, string message) : base(Status.UnknownKey, message) { Key = key; }
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
            try
            {
                Console.Error.WriteLine("shmbus: the receive handler of " + name + " threw: " + e);
            }
            catch (Exception)
            {
                // Standard error is gone: nothing may unwind into the library's thread.
            }
        }
    }

    /// <summary>The handler delegate of the original design: called with the data received.</summary>
    public delegate void ReceivedEventHandler<T>(T data);
}
