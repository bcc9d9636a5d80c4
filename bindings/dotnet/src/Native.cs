// P/Invoke declarations of libshmbus (crates/shmbus-ffi/include/shmbus.h) and the SafeHandle
// classes that own each kind of handle. Nothing here is public: the classes in this assembly
// are the API.
using System;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Shmbus
{
    /// <summary>The C ABI, one declaration per function used.</summary>
    internal static class Native
    {
        internal const string Lib = "shmbus";

        [StructLayout(LayoutKind.Sequential)]
        internal struct ChannelConfig
        {
            internal UIntPtr Capacity;
            internal UIntPtr MaxMessage;
            internal int Mode;
            internal UIntPtr MaxSubscribers;
        }

        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate void MessageFn(IntPtr data, UIntPtr len, ulong lost, IntPtr user);

        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate void UpdateFn(IntPtr data, UIntPtr len, ulong version, ulong skipped, IntPtr user);

        [DllImport(Lib)] internal static extern IntPtr shmbus_version();
        [DllImport(Lib)] internal static extern uint shmbus_layout_version();
        [DllImport(Lib)] internal static extern IntPtr shmbus_last_error();
        [DllImport(Lib)] internal static extern IntPtr shmbus_status_name(int status);
        [DllImport(Lib)] internal static extern int shmbus_remove(string name, OptionsHandle opts);

        // Options
        [DllImport(Lib)] internal static extern int shmbus_options_create(out OptionsHandle o);
        [DllImport(Lib)] internal static extern void shmbus_options_close(IntPtr o);
        [DllImport(Lib)] internal static extern int shmbus_options_set_namespace(OptionsHandle o, string ns);
        [DllImport(Lib)] internal static extern int shmbus_options_set_mode(OptionsHandle o, uint mode);
        [DllImport(Lib)] internal static extern int shmbus_options_set_persistent(OptionsHandle o, int persistent);
        [DllImport(Lib)] internal static extern int shmbus_options_set_open_timeout(OptionsHandle o, long ns);
        [DllImport(Lib)] internal static extern int shmbus_options_set_wait_for_creation(OptionsHandle o, long ns);
        [DllImport(Lib)] internal static extern int shmbus_options_set_spin(OptionsHandle o, long ns);
        [DllImport(Lib)] internal static extern int shmbus_options_allow_owner(OptionsHandle o, uint uid);
        [DllImport(Lib)] internal static extern int shmbus_options_allow_any_owner(OptionsHandle o);
        [DllImport(Lib)] internal static extern int shmbus_options_require_owner(OptionsHandle o, uint uid);

        // Channels
        [DllImport(Lib)] internal static extern void shmbus_channel_config_default(out ChannelConfig cfg);
        [DllImport(Lib)] internal static extern void shmbus_channel_config_with_capacity(out ChannelConfig cfg, UIntPtr capacity);
        [DllImport(Lib)] internal static extern int shmbus_publisher_create_with(string name, ref ChannelConfig cfg, OptionsHandle opts, out PublisherHandle p);
        [DllImport(Lib)] internal static extern int shmbus_publisher_open(string name, OptionsHandle opts, out PublisherHandle p);
        [DllImport(Lib)] internal static extern unsafe int shmbus_publisher_send_timeout(PublisherHandle p, byte* data, UIntPtr len, long timeoutNs);
        [DllImport(Lib)] internal static extern int shmbus_publisher_loan_timeout(PublisherHandle p, UIntPtr len, out IntPtr buf, long timeoutNs);
        [DllImport(Lib)] internal static extern int shmbus_publisher_commit(PublisherHandle p);
        [DllImport(Lib)] internal static extern int shmbus_publisher_discard(PublisherHandle p);
        [DllImport(Lib)] internal static extern ulong shmbus_publisher_published(PublisherHandle p);
        [DllImport(Lib)] internal static extern UIntPtr shmbus_publisher_subscriber_count(PublisherHandle p);
        [DllImport(Lib)] internal static extern int shmbus_publisher_wait_subscribers(PublisherHandle p, UIntPtr count, long ns);
        [DllImport(Lib)] internal static extern int shmbus_publisher_config(PublisherHandle p, out ChannelConfig cfg);
        [DllImport(Lib)] internal static extern void shmbus_publisher_close(IntPtr p);

        [DllImport(Lib)] internal static extern int shmbus_subscriber_open_with(string name, OptionsHandle opts, int fromOldest, out SubscriberHandle s);
        [DllImport(Lib)] internal static extern unsafe int shmbus_subscriber_recv(SubscriberHandle s, byte* buf, UIntPtr cap, out UIntPtr len, long timeoutNs);
        [DllImport(Lib)] internal static extern int shmbus_subscriber_recv_ref(SubscriberHandle s, out IntPtr data, out UIntPtr len, long timeoutNs);
        [DllImport(Lib)] internal static extern int shmbus_subscriber_release(SubscriberHandle s);
        [DllImport(Lib)] internal static extern ulong shmbus_subscriber_lost(SubscriberHandle s);
        [DllImport(Lib)] internal static extern int shmbus_subscriber_publisher_alive(SubscriberHandle s);
        [DllImport(Lib)] internal static extern int shmbus_subscriber_config(SubscriberHandle s, out ChannelConfig cfg);
        [DllImport(Lib)] internal static extern void shmbus_subscriber_close(IntPtr s);
        // Consumes the subscriber (whatever the outcome): see SubscriberHandle.Consume.
        [DllImport(Lib)] internal static extern int shmbus_subscriber_on_message(IntPtr s, MessageFn cb, IntPtr user, out HandlerHandle h);

        // Blackboards
        [DllImport(Lib)] internal static extern int shmbus_blackboard_create_with(string name, UIntPtr capacity, OptionsHandle opts, out BlackboardHandle b);
        [DllImport(Lib)] internal static extern int shmbus_blackboard_open_with(string name, OptionsHandle opts, out BlackboardHandle b);
        [DllImport(Lib)] internal static extern int shmbus_blackboard_create_or_open(string name, UIntPtr capacity, OptionsHandle opts, out BlackboardHandle b);
        [DllImport(Lib)] internal static extern unsafe int shmbus_blackboard_write(BlackboardHandle b, byte* data, UIntPtr len);
        [DllImport(Lib)] internal static extern unsafe int shmbus_blackboard_read(BlackboardHandle b, byte* buf, UIntPtr cap, out UIntPtr len, out ulong version);
        [DllImport(Lib)] internal static extern ulong shmbus_blackboard_version(BlackboardHandle b);
        [DllImport(Lib)] internal static extern UIntPtr shmbus_blackboard_capacity(BlackboardHandle b);
        [DllImport(Lib)] internal static extern int shmbus_blackboard_wait_newer(BlackboardHandle b, ulong version, long timeoutNs, out ulong newer);
        [DllImport(Lib)] internal static extern int shmbus_blackboard_on_update(BlackboardHandle b, ulong version, UpdateFn cb, IntPtr user, out HandlerHandle h);
        [DllImport(Lib)] internal static extern void shmbus_blackboard_close(IntPtr b);

        // Keyed blackboards (a key is passed as NUL-terminated UTF-8 bytes: see KeyedBlackboard.KeyBytes)
        [DllImport(Lib)] internal static extern int shmbus_keyed_blackboard_create_with(string name, IntPtr[] keys, UIntPtr keyCount, UIntPtr capacity, OptionsHandle opts, out KeyedBlackboardHandle b);
        [DllImport(Lib)] internal static extern int shmbus_keyed_blackboard_open_with(string name, OptionsHandle opts, out KeyedBlackboardHandle b);
        [DllImport(Lib)] internal static extern int shmbus_keyed_blackboard_create_or_open(string name, IntPtr[] keys, UIntPtr keyCount, UIntPtr capacity, OptionsHandle opts, out KeyedBlackboardHandle b);
        [DllImport(Lib)] internal static extern UIntPtr shmbus_keyed_blackboard_capacity(KeyedBlackboardHandle b);
        [DllImport(Lib)] internal static extern UIntPtr shmbus_keyed_blackboard_key_count(KeyedBlackboardHandle b);
        [DllImport(Lib)] internal static extern IntPtr shmbus_keyed_blackboard_key(KeyedBlackboardHandle b, UIntPtr index);
        [DllImport(Lib)] internal static extern unsafe int shmbus_keyed_blackboard_write(KeyedBlackboardHandle b, byte[] key, byte* data, UIntPtr len);
        [DllImport(Lib)] internal static extern unsafe int shmbus_keyed_blackboard_read(KeyedBlackboardHandle b, byte[] key, byte* buf, UIntPtr cap, out UIntPtr len, out ulong version);
        [DllImport(Lib)] internal static extern int shmbus_keyed_blackboard_version(KeyedBlackboardHandle b, byte[] key, out ulong version);
        [DllImport(Lib)] internal static extern int shmbus_keyed_blackboard_wait_newer(KeyedBlackboardHandle b, byte[] key, ulong version, long timeoutNs, out ulong newer);
        [DllImport(Lib)] internal static extern int shmbus_keyed_blackboard_on_update(KeyedBlackboardHandle b, byte[] key, ulong version, UpdateFn cb, IntPtr user, out HandlerHandle h);
        [DllImport(Lib)] internal static extern void shmbus_keyed_blackboard_close(IntPtr b);

        // Events
        [DllImport(Lib)] internal static extern int shmbus_event_create_with(string name, int manualReset, OptionsHandle opts, out EventHandle e);
        [DllImport(Lib)] internal static extern int shmbus_event_open_with(string name, OptionsHandle opts, out EventHandle e);
        [DllImport(Lib)] internal static extern int shmbus_event_create_or_open(string name, int manualReset, OptionsHandle opts, out EventHandle e);
        [DllImport(Lib)] internal static extern int shmbus_event_set(EventHandle e);
        [DllImport(Lib)] internal static extern int shmbus_event_reset(EventHandle e);
        [DllImport(Lib)] internal static extern int shmbus_event_is_set(EventHandle e);
        [DllImport(Lib)] internal static extern int shmbus_event_wait(EventHandle e, long timeoutNs);
        [DllImport(Lib)] internal static extern void shmbus_event_close(IntPtr e);

        // Duplex
        [DllImport(Lib)] internal static extern int shmbus_duplex_listen(string name, OptionsHandle opts, out DuplexHandle d);
        [DllImport(Lib)] internal static extern int shmbus_duplex_connect(string name, OptionsHandle opts, out DuplexHandle d);
        [DllImport(Lib)] internal static extern int shmbus_duplex_connect_timeout(string name, OptionsHandle opts, long ns, out DuplexHandle d);
        [DllImport(Lib)] internal static extern unsafe int shmbus_duplex_send(DuplexHandle d, byte* data, UIntPtr len);
        [DllImport(Lib)] internal static extern unsafe int shmbus_duplex_recv(DuplexHandle d, byte* buf, UIntPtr cap, out UIntPtr len, out ulong request, long timeoutNs);
        [DllImport(Lib)] internal static extern unsafe int shmbus_duplex_reply(DuplexHandle d, ulong request, byte* data, UIntPtr len);
        [DllImport(Lib)] internal static extern unsafe int shmbus_duplex_request(DuplexHandle d, byte* data, UIntPtr len, byte* reply, UIntPtr cap, out UIntPtr replyLen, long timeoutNs);
        [DllImport(Lib)] internal static extern unsafe int shmbus_duplex_take_reply(DuplexHandle d, byte* buf, UIntPtr cap, out UIntPtr len);
        [DllImport(Lib)] internal static extern void shmbus_duplex_close(IntPtr d);

        // Segments
        [DllImport(Lib)] internal static extern int shmbus_segment_create(string name, UIntPtr size, OptionsHandle opts, out SegmentHandle s);
        [DllImport(Lib)] internal static extern int shmbus_segment_open(string name, OptionsHandle opts, out SegmentHandle s);
        [DllImport(Lib)] internal static extern UIntPtr shmbus_segment_size(SegmentHandle s);
        [DllImport(Lib)] internal static extern unsafe int shmbus_segment_read(SegmentHandle s, UIntPtr offset, byte* buf, UIntPtr len);
        [DllImport(Lib)] internal static extern unsafe int shmbus_segment_write(SegmentHandle s, UIntPtr offset, byte* data, UIntPtr len);
        [DllImport(Lib)] internal static extern void shmbus_segment_close(IntPtr s);

        // Handlers
        [DllImport(Lib)] internal static extern void shmbus_handler_close(IntPtr h);

        // Wait sets (the attached objects' handles are only borrowed for the call: the set
        // keeps its own reference to each object's memory)
        [DllImport(Lib)] internal static extern int shmbus_waitset_create(out WaitSetHandle ws);
        [DllImport(Lib)] internal static extern void shmbus_waitset_close(IntPtr ws);
        [DllImport(Lib)] internal static extern int shmbus_waitset_attach_subscriber(WaitSetHandle ws, SubscriberHandle s, out ulong key);
        [DllImport(Lib)] internal static extern int shmbus_waitset_attach_event(WaitSetHandle ws, EventHandle e, out ulong key);
        [DllImport(Lib)] internal static extern int shmbus_waitset_attach_blackboard(WaitSetHandle ws, BlackboardHandle b, out ulong key);
        [DllImport(Lib)] internal static extern int shmbus_waitset_attach_keyed_key(WaitSetHandle ws, KeyedBlackboardHandle b, byte[] name, out ulong key);
        [DllImport(Lib)] internal static extern int shmbus_waitset_attach_timer(WaitSetHandle ws, long periodNs, out ulong key);
        [DllImport(Lib)] internal static extern int shmbus_waitset_attach_appearance(WaitSetHandle ws, string name, OptionsHandle opts, out ulong key);
        [DllImport(Lib)] internal static extern int shmbus_waitset_detach(WaitSetHandle ws, ulong key);
        [DllImport(Lib)] internal static extern unsafe int shmbus_waitset_wait(WaitSetHandle ws, long timeoutNs, ulong* ready, UIntPtr cap, out UIntPtr count);

        /// <summary>A NUL-terminated UTF-8 string owned by the library, as a string.</summary>
        internal static string Utf8(IntPtr p)
        {
            if (p == IntPtr.Zero) return "";
            int n = 0;
            while (Marshal.ReadByte(p, n) != 0) n++;
            var bytes = new byte[n];
            Marshal.Copy(p, bytes, 0, n);
            return System.Text.Encoding.UTF8.GetString(bytes);
        }

        /// <summary>A timeout as the C API takes it: nanoseconds, negative for "no limit".</summary>
        internal static long Nanos(TimeSpan timeout)
        {
            if (timeout == System.Threading.Timeout.InfiniteTimeSpan) return -1;
            if (timeout < TimeSpan.Zero)
                throw new ArgumentOutOfRangeException("timeout", "a timeout is >= 0, or Timeout.InfiniteTimeSpan");
            long ticks = timeout.Ticks;
            return ticks > long.MaxValue / 100 ? long.MaxValue : ticks * 100;
        }
    }

    internal sealed class OptionsHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        internal OptionsHandle() : base(true) { }
        protected override bool ReleaseHandle() { Native.shmbus_options_close(handle); return true; }
    }

    internal sealed class PublisherHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        internal PublisherHandle() : base(true) { }
        protected override bool ReleaseHandle() { Native.shmbus_publisher_close(handle); return true; }
    }

    internal sealed class SubscriberHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        internal SubscriberHandle() : base(true) { }
        protected override bool ReleaseHandle() { Native.shmbus_subscriber_close(handle); return true; }

        /// <summary>Hands the native subscriber over (to a receive handler, which frees it):
        /// this handle no longer owns it.</summary>
        internal IntPtr Consume()
        {
            IntPtr raw = handle;
            SetHandleAsInvalid();
            return raw;
        }
    }

    internal sealed class BlackboardHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        internal BlackboardHandle() : base(true) { }
        protected override bool ReleaseHandle() { Native.shmbus_blackboard_close(handle); return true; }
    }

    internal sealed class KeyedBlackboardHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        internal KeyedBlackboardHandle() : base(true) { }
        protected override bool ReleaseHandle() { Native.shmbus_keyed_blackboard_close(handle); return true; }
    }

    internal sealed class EventHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        internal EventHandle() : base(true) { }
        protected override bool ReleaseHandle() { Native.shmbus_event_close(handle); return true; }
    }

    internal sealed class DuplexHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        internal DuplexHandle() : base(true) { }
        protected override bool ReleaseHandle() { Native.shmbus_duplex_close(handle); return true; }
    }

    internal sealed class SegmentHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        internal SegmentHandle() : base(true) { }
        protected override bool ReleaseHandle() { Native.shmbus_segment_close(handle); return true; }
    }

    internal sealed class HandlerHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        internal HandlerHandle() : base(true) { }
        protected override bool ReleaseHandle() { Native.shmbus_handler_close(handle); return true; }
    }

    internal sealed class WaitSetHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        internal WaitSetHandle() : base(true) { }
        protected override bool ReleaseHandle() { Native.shmbus_waitset_close(handle); return true; }
    }
}
