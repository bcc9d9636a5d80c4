/*
 * shmbus.hpp: a header-only C++17 RAII wrapper over shmbus.h, the C API of shmbus
 * (inter-process communication through shared memory on Linux).
 *
 * Link with -lshmbus, exactly as for shmbus.h; nothing else is needed beyond the standard
 * library. Every handle class is move-only: copying is deleted, moving is noexcept and
 * leaves the source empty, and the destructor calls the matching *_close. A moved-from
 * (or default-constructed) object is harmless to destroy; its other calls throw
 * shmbus::invalid_error (SHMBUS_ERR_INVALID), except the value getters, which return 0.
 *
 * Errors: every failing C call becomes an exception derived from shmbus::error, which
 * carries the status code and the message of shmbus_last_error(). Outcomes that are
 * expected in normal operation are returned instead of thrown where the API says so
 * (try_send -> false, try_recv -> std::nullopt, recv_for -> std::nullopt on timeout,
 * wait_for -> false, wait_newer -> std::nullopt).
 *
 * Timeouts are std::chrono::nanoseconds (any coarser std::chrono duration converts
 * implicitly); shmbus::forever, or any negative duration, waits as long as it takes, and
 * zero does not wait.
 *
 * Threads: as in shmbus.h. blackboard, keyed_blackboard, event, segment and options objects
 * may be used by several threads at once; publisher, subscriber and duplex objects by one
 * thread at a time (they may move between threads). Handler callbacks run on a thread of
 * their own.
 */

#ifndef SHMBUS_HPP
#define SHMBUS_HPP

#include "shmbus.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace shmbus {

// ---------------------------------------------------------------------------------------
// Library information and timeouts
// ---------------------------------------------------------------------------------------

/// The version of the shmbus library, e.g. "0.1.0".
inline std::string version() {
    const char* v = shmbus_version();
    return v ? std::string(v) : std::string();
}

/// The shared-memory layout version the library speaks (objects of another are refused).
inline uint32_t layout_version() noexcept { return shmbus_layout_version(); }

/// The name of a status code ("SHMBUS_ERR_TIMEOUT", ...), or "SHMBUS_ERR_UNKNOWN".
inline std::string status_name(int status) {
    const char* n = shmbus_status_name(status);
    return n ? std::string(n) : std::string();
}

/// A timeout that waits as long as it takes (any negative duration does the same).
inline constexpr std::chrono::nanoseconds forever{-1};

namespace detail {

/// A C timeout: -1 (forever) for a negative duration, else the count of nanoseconds.
inline int64_t to_ns(std::chrono::nanoseconds timeout) noexcept {
    return timeout.count() < 0 ? int64_t{-1} : static_cast<int64_t>(timeout.count());
}

/// Whether T is a one-byte element type a byte view may alias.
template <class T>
inline constexpr bool is_byte_like_v =
    std::is_same_v<std::remove_cv_t<T>, uint8_t> || std::is_same_v<std::remove_cv_t<T>, char> ||
    std::is_same_v<std::remove_cv_t<T>, signed char> ||
    std::is_same_v<std::remove_cv_t<T>, std::byte>;

}  // namespace detail

// ---------------------------------------------------------------------------------------
// Byte views (std::span-like, for C++17)
// ---------------------------------------------------------------------------------------

/// A read-only view of contiguous bytes (pointer and length), like std::span<const uint8_t>.
/// It does not own the bytes: they must outlive the view.
class bytes_view {
public:
    using value_type = uint8_t;
    using size_type = size_t;
    using const_iterator = const uint8_t*;
    using iterator = const uint8_t*;

    /// An empty view.
    constexpr bytes_view() noexcept = default;

    /// A view of `size` bytes at `data` (which may be NULL when `size` is 0).
    bytes_view(const void* data, size_t size) noexcept
        : data_(static_cast<const uint8_t*>(data)), size_(size) {}

    /// A view of the characters of a string (no terminating NUL).
    bytes_view(std::string_view s) noexcept
        : data_(reinterpret_cast<const uint8_t*>(s.data())), size_(s.size()) {}

    /// A view of a vector of one-byte elements (uint8_t, char, std::byte).
    template <class T, class A, class = std::enable_if_t<detail::is_byte_like_v<T>>>
    bytes_view(const std::vector<T, A>& v) noexcept
        : data_(reinterpret_cast<const uint8_t*>(v.data())), size_(v.size()) {}

    /// A view of an array of one-byte elements (uint8_t, char, std::byte).
    template <class T, size_t N, class = std::enable_if_t<detail::is_byte_like_v<T>>>
    bytes_view(const std::array<T, N>& a) noexcept
        : data_(reinterpret_cast<const uint8_t*>(a.data())), size_(N) {}

    /// The first byte (NULL or dangling for an empty view).
    const uint8_t* data() const noexcept { return data_; }
    /// The first byte, as std::byte.
    const std::byte* bytes() const noexcept { return reinterpret_cast<const std::byte*>(data_); }
    /// How many bytes the view holds.
    size_t size() const noexcept { return size_; }
    /// Whether the view holds no byte.
    bool empty() const noexcept { return size_ == 0; }
    /// Iterator to the first byte.
    const uint8_t* begin() const noexcept { return data_; }
    /// Iterator past the last byte.
    const uint8_t* end() const noexcept { return data_ + size_; }
    /// Byte `i` (unchecked, like std::span).
    const uint8_t& operator[](size_t i) const noexcept { return data_[i]; }
    /// `count` bytes from `offset` (clamped to the view).
    bytes_view subview(size_t offset, size_t count = SIZE_MAX) const noexcept {
        offset = std::min(offset, size_);
        return bytes_view(data_ + offset, std::min(count, size_ - offset));
    }
    /// The bytes as a string view (valid as long as the bytes).
    std::string_view as_string_view() const noexcept {
        return std::string_view(reinterpret_cast<const char*>(data_), size_);
    }
    /// A copy of the bytes as a std::string.
    std::string to_string() const { return std::string(as_string_view()); }
    /// A copy of the bytes as a std::vector<uint8_t>.
    std::vector<uint8_t> to_vector() const { return std::vector<uint8_t>(begin(), end()); }
    /// A copy of the bytes as a std::string.
    explicit operator std::string() const { return to_string(); }
    /// A copy of the bytes as a std::vector<uint8_t>.
    explicit operator std::vector<uint8_t>() const { return to_vector(); }

private:
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

/// Whether two views hold the same bytes.
inline bool operator==(bytes_view a, bytes_view b) noexcept {
    return a.size() == b.size() && (a.size() == 0 || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

/// Whether two views hold different bytes.
inline bool operator!=(bytes_view a, bytes_view b) noexcept { return !(a == b); }

/// A writable view of contiguous bytes (pointer and length), like std::span<uint8_t>: the
/// bytes of a loan. It does not own the bytes.
class mut_bytes {
public:
    using value_type = uint8_t;
    using size_type = size_t;
    using iterator = uint8_t*;
    using const_iterator = const uint8_t*;

    /// An empty view.
    constexpr mut_bytes() noexcept = default;
    /// A view of `size` writable bytes at `data`.
    mut_bytes(void* data, size_t size) noexcept : data_(static_cast<uint8_t*>(data)), size_(size) {}

    /// The first byte.
    uint8_t* data() const noexcept { return data_; }
    /// The first byte, as std::byte.
    std::byte* bytes() const noexcept { return reinterpret_cast<std::byte*>(data_); }
    /// How many bytes the view holds.
    size_t size() const noexcept { return size_; }
    /// Whether the view holds no byte.
    bool empty() const noexcept { return size_ == 0; }
    /// Iterator to the first byte.
    uint8_t* begin() const noexcept { return data_; }
    /// Iterator past the last byte.
    uint8_t* end() const noexcept { return data_ + size_; }
    /// Byte `i` (unchecked, like std::span).
    uint8_t& operator[](size_t i) const noexcept { return data_[i]; }
    /// Copies `src` to the start of the view; returns how many bytes fit and were copied.
    size_t copy_from(bytes_view src) const noexcept {
        size_t n = std::min(src.size(), size_);
        if (n) std::memcpy(data_, src.data(), n);
        return n;
    }
    /// A read-only view of the same bytes.
    operator bytes_view() const noexcept { return bytes_view(data_, size_); }

private:
    uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// A failed shmbus call: the status code (a negative SHMBUS_ERR_*) and the library's message
/// (shmbus_last_error() at the time of the failure). what() is "<status name>: <message>".
class error : public std::runtime_error {
public:
    /// An error with status `status` and message `message`.
    error(int status, const std::string& message)
        : std::runtime_error(status_name(status) + ": " +
                             (message.empty() ? std::string("(no message)") : message)),
          status_(status),
          message_(message) {}
    /// The status code (SHMBUS_ERR_*).
    int status() const noexcept { return status_; }
    /// The library's message, without the status name.
    const std::string& message() const noexcept { return message_; }
    /// The status code's name ("SHMBUS_ERR_TIMEOUT", ...).
    std::string name() const { return status_name(status_); }

private:
    int status_;
    std::string message_;
};

/// SHMBUS_ERR_INVALID: an invalid argument or handle (also: a moved-from object).
class invalid_error : public error {
public:
    /// An invalid-argument error with `message`.
    explicit invalid_error(const std::string& message) : error(SHMBUS_ERR_INVALID, message) {}
};

/// SHMBUS_ERR_TIMEOUT: a wait with a timeout gave up.
class timeout_error : public error {
public:
    /// A timeout error with `message`.
    explicit timeout_error(const std::string& message) : error(SHMBUS_ERR_TIMEOUT, message) {}
};

/// SHMBUS_ERR_EMPTY: no message was waiting (a call told not to wait).
class empty_error : public error {
public:
    /// An empty error with `message`.
    explicit empty_error(const std::string& message) : error(SHMBUS_ERR_EMPTY, message) {}
};

/// SHMBUS_ERR_FULL: a back-pressure channel was full (a send told not to wait).
class full_error : public error {
public:
    /// A full error with `message`.
    explicit full_error(const std::string& message) : error(SHMBUS_ERR_FULL, message) {}
};

/// SHMBUS_ERR_LAGGED: a subscriber of a lossy channel fell behind and lost messages; the
/// next receive continues with the oldest message kept.
class lagged_error : public error {
public:
    /// A lag error with `message`, `lost` messages lost.
    lagged_error(const std::string& message, uint64_t lost)
        : error(SHMBUS_ERR_LAGGED, message), lost_(lost) {}
    /// How many messages were lost just now.
    uint64_t lost() const noexcept { return lost_; }

private:
    uint64_t lost_;
};

/// SHMBUS_ERR_DISCONNECTED: end of stream; the publisher (or peer) closed and every message
/// has been received.
class disconnected_error : public error {
public:
    /// A disconnection error with `message`.
    explicit disconnected_error(const std::string& message)
        : error(SHMBUS_ERR_DISCONNECTED, message) {}
};

/// SHMBUS_ERR_PUBLISHER_GONE: the publisher died without closing; every message it sent has
/// been received.
class publisher_gone_error : public error {
public:
    /// A publisher-gone error with `message`.
    explicit publisher_gone_error(const std::string& message)
        : error(SHMBUS_ERR_PUBLISHER_GONE, message) {}
};

/// SHMBUS_ERR_NOT_FOUND: no object of that name (check the name and the namespace).
class not_found_error : public error {
public:
    /// A not-found error with `message`.
    explicit not_found_error(const std::string& message) : error(SHMBUS_ERR_NOT_FOUND, message) {}
};

/// SHMBUS_ERR_EXISTS: the object exists already, or the channel has a live publisher.
class exists_error : public error {
public:
    /// An already-exists error with `message`.
    explicit exists_error(const std::string& message) : error(SHMBUS_ERR_EXISTS, message) {}
};

/// SHMBUS_ERR_PERMISSION: the OS refused access, or the owner is not trusted.
class permission_error : public error {
public:
    /// A permission error with `message`.
    explicit permission_error(const std::string& message)
        : error(SHMBUS_ERR_PERMISSION, message) {}
};

/// SHMBUS_ERR_CORRUPT: the object is not a usable shmbus object.
class corrupt_error : public error {
public:
    /// A corruption error with `message`.
    explicit corrupt_error(const std::string& message) : error(SHMBUS_ERR_CORRUPT, message) {}
};

/// SHMBUS_ERR_TOO_SMALL: the caller's buffer is too small; the message or value stays unread.
class too_small_error : public error {
public:
    /// A buffer-too-small error with `message`; `needed` bytes would fit.
    too_small_error(const std::string& message, size_t needed)
        : error(SHMBUS_ERR_TOO_SMALL, message), needed_(needed) {}
    /// The buffer size needed.
    size_t needed() const noexcept { return needed_; }

private:
    size_t needed_;
};

/// SHMBUS_ERR_TOO_LARGE: the message or value is larger than the object accepts.
class too_large_error : public error {
public:
    /// A too-large error with `message`.
    explicit too_large_error(const std::string& message) : error(SHMBUS_ERR_TOO_LARGE, message) {}
};

/// SHMBUS_ERR_MISMATCH: another kind of object, or another configuration than asked for.
class mismatch_error : public error {
public:
    /// A mismatch error with `message`.
    explicit mismatch_error(const std::string& message) : error(SHMBUS_ERR_MISMATCH, message) {}
};

/// SHMBUS_ERR_VERSION: the object was made with another memory layout version.
class version_error : public error {
public:
    /// A layout-version error with `message`.
    explicit version_error(const std::string& message) : error(SHMBUS_ERR_VERSION, message) {}
};

/// SHMBUS_ERR_NO_SLOT: every subscriber slot of the channel is taken.
class no_slot_error : public error {
public:
    /// A no-slot error with `message`.
    explicit no_slot_error(const std::string& message) : error(SHMBUS_ERR_NO_SLOT, message) {}
};

/// SHMBUS_ERR_WRONG_MODE: the operation needs the other channel mode, or a reply was asked
/// for a plain message.
class wrong_mode_error : public error {
public:
    /// A wrong-mode error with `message`.
    explicit wrong_mode_error(const std::string& message)
        : error(SHMBUS_ERR_WRONG_MODE, message) {}
};

/// SHMBUS_ERR_WRITER_DIED: a blackboard's writer died mid-write; the value is lost.
class writer_died_error : public error {
public:
    /// A writer-died error with `message`.
    explicit writer_died_error(const std::string& message)
        : error(SHMBUS_ERR_WRITER_DIED, message) {}
};

/// SHMBUS_ERR_BUSY: a blackboard stayed busy with another writer; try again.
class busy_error : public error {
public:
    /// A busy error with `message`.
    explicit busy_error(const std::string& message) : error(SHMBUS_ERR_BUSY, message) {}
};

/// SHMBUS_ERR_NO_SPACE: /dev/shm has no room for the object.
class no_space_error : public error {
public:
    /// A no-space error with `message`.
    explicit no_space_error(const std::string& message) : error(SHMBUS_ERR_NO_SPACE, message) {}
};

/// SHMBUS_ERR_FOREIGN_PROCESS: the handle belongs to another process (a fork() parent).
class foreign_process_error : public error {
public:
    /// A foreign-process error with `message`.
    explicit foreign_process_error(const std::string& message)
        : error(SHMBUS_ERR_FOREIGN_PROCESS, message) {}
};

/// SHMBUS_ERR_NO_LOAN: nothing to commit (no loan held) or to fetch.
class no_loan_error : public error {
public:
    /// A no-loan error with `message`.
    explicit no_loan_error(const std::string& message) : error(SHMBUS_ERR_NO_LOAN, message) {}
};

/// SHMBUS_ERR_HANDLER: a receive handler stopped because it failed.
class handler_error : public error {
public:
    /// A handler error with `message`.
    explicit handler_error(const std::string& message) : error(SHMBUS_ERR_HANDLER, message) {}
};

/// SHMBUS_ERR_OS: another operating-system call failed.
class os_error : public error {
public:
    /// An OS error with `message`.
    explicit os_error(const std::string& message) : error(SHMBUS_ERR_OS, message) {}
};

/// SHMBUS_ERR_INTERNAL: a bug in shmbus (an internal panic was caught).
class internal_error : public error {
public:
    /// An internal error with `message`.
    explicit internal_error(const std::string& message) : error(SHMBUS_ERR_INTERNAL, message) {}
};

/// SHMBUS_ERR_UNKNOWN_KEY: a keyed blackboard has no such key (its keys are fixed when it is
/// created); the message names the key.
class unknown_key_error : public error {
public:
    /// An unknown-key error with `message`.
    explicit unknown_key_error(const std::string& message)
        : error(SHMBUS_ERR_UNKNOWN_KEY, message) {}
};

namespace detail {

/// This thread's last shmbus error message.
inline std::string last_error_message() {
    const char* m = shmbus_last_error();
    return m ? std::string(m) : std::string();
}

/// The integer that ends just before `pos` in `s` (0 if none).
inline uint64_t number_before(const std::string& s, size_t pos) {
    size_t end = pos;
    while (end > 0 && s[end - 1] == ' ') --end;
    size_t begin = end;
    while (begin > 0 && s[begin - 1] >= '0' && s[begin - 1] <= '9') --begin;
    uint64_t n = 0;
    for (size_t i = begin; i < end; ++i) n = n * 10 + static_cast<uint64_t>(s[i] - '0');
    return n;
}

/// Best effort: the count in a lag message ("lagged: N messages lost ...").
inline uint64_t parse_lost(const std::string& msg) {
    size_t pos = msg.find(" messages lost");
    return pos == std::string::npos ? 0 : number_before(msg, pos);
}

/// Best effort: the size needed in a buffer-too-small message ("... is N bytes but ...").
inline size_t parse_needed(const std::string& msg) {
    size_t pos = msg.find(" bytes but");
    return pos == std::string::npos ? 0 : static_cast<size_t>(number_before(msg, pos));
}

/// Throws the exception class of `status` with `message`; `needed` and `lost` fill
/// too_small_error and lagged_error (parsed from the message when 0).
[[noreturn]] inline void raise(int status, const std::string& message, size_t needed = 0,
                               uint64_t lost = 0) {
    switch (status) {
        case SHMBUS_ERR_INVALID: throw invalid_error(message);
        case SHMBUS_ERR_TIMEOUT: throw timeout_error(message);
        case SHMBUS_ERR_EMPTY: throw empty_error(message);
        case SHMBUS_ERR_FULL: throw full_error(message);
        case SHMBUS_ERR_LAGGED: throw lagged_error(message, lost ? lost : parse_lost(message));
        case SHMBUS_ERR_DISCONNECTED: throw disconnected_error(message);
        case SHMBUS_ERR_PUBLISHER_GONE: throw publisher_gone_error(message);
        case SHMBUS_ERR_NOT_FOUND: throw not_found_error(message);
        case SHMBUS_ERR_EXISTS: throw exists_error(message);
        case SHMBUS_ERR_PERMISSION: throw permission_error(message);
        case SHMBUS_ERR_CORRUPT: throw corrupt_error(message);
        case SHMBUS_ERR_TOO_SMALL:
            throw too_small_error(message, needed ? needed : parse_needed(message));
        case SHMBUS_ERR_TOO_LARGE: throw too_large_error(message);
        case SHMBUS_ERR_MISMATCH: throw mismatch_error(message);
        case SHMBUS_ERR_VERSION: throw version_error(message);
        case SHMBUS_ERR_NO_SLOT: throw no_slot_error(message);
        case SHMBUS_ERR_WRONG_MODE: throw wrong_mode_error(message);
        case SHMBUS_ERR_WRITER_DIED: throw writer_died_error(message);
        case SHMBUS_ERR_BUSY: throw busy_error(message);
        case SHMBUS_ERR_NO_SPACE: throw no_space_error(message);
        case SHMBUS_ERR_FOREIGN_PROCESS: throw foreign_process_error(message);
        case SHMBUS_ERR_NO_LOAN: throw no_loan_error(message);
        case SHMBUS_ERR_HANDLER: throw handler_error(message);
        case SHMBUS_ERR_OS: throw os_error(message);
        case SHMBUS_ERR_INTERNAL: throw internal_error(message);
        case SHMBUS_ERR_UNKNOWN_KEY: throw unknown_key_error(message);
        default: throw error(status, message);
    }
}

}  // namespace detail

/// Throws the shmbus::error subclass for `status` (a negative SHMBUS_ERR_*), with this
/// thread's shmbus_last_error() message. Call it right after the failing C call.
[[noreturn]] inline void throw_error(int status) {
    detail::raise(status, detail::last_error_message());
}

/// Returns `status` when it is not negative (SHMBUS_OK or a count/flag), else throws the
/// matching shmbus::error subclass (see throw_error).
inline int check(int status) {
    if (status < 0) throw_error(status);
    return status;
}

namespace detail {

/// Owns one C handle of type T and closes it with Close: the move-only core of the
/// wrapper classes.
template <class T, void (*Close)(T*)>
class unique_handle {
public:
    unique_handle() noexcept = default;
    explicit unique_handle(T* h) noexcept : h_(h) {}
    ~unique_handle() { reset(); }
    unique_handle(const unique_handle&) = delete;
    unique_handle& operator=(const unique_handle&) = delete;
    unique_handle(unique_handle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
    unique_handle& operator=(unique_handle&& o) noexcept {
        if (this != &o) {
            reset();
            h_ = std::exchange(o.h_, nullptr);
        }
        return *this;
    }
    /// The handle (NULL when empty).
    T* get() const noexcept { return h_; }
    /// Gives the handle up without closing it.
    T* release() noexcept { return std::exchange(h_, nullptr); }
    /// Closes the handle, if any.
    void reset() noexcept {
        if (h_) Close(std::exchange(h_, nullptr));
    }

private:
    T* h_ = nullptr;
};

/// A publisher's or subscriber's handle and a generation counter that tells a loan or a
/// sample whether a later call on the same handle has superseded it. Kept on the heap so
/// that its address survives moves of the owning object.
template <class T, void (*Close)(T*)>
struct gen_handle {
    unique_handle<T, Close> h;
    uint64_t gen = 0;
};

/// What a handler's callback shares with its C trampoline: the first exception it threw.
struct callback_state {
    virtual ~callback_state() = default;
    std::exception_ptr error;        ///< The first exception the callback threw.
    std::atomic<bool> failed{false};  ///< Set once the callback has thrown.
};

/// A subscriber handler's callback.
struct message_state : callback_state {
    std::function<void(bytes_view, uint64_t)> fn;
};

/// A blackboard handler's callback.
struct update_state : callback_state {
    std::function<void(bytes_view, uint64_t, uint64_t)> fn;
};

/// The C callback of a subscriber handler: calls the std::function and keeps any
/// exception (no exception ever crosses into C). After the first exception the callback is
/// no longer called.
inline void message_trampoline(const void* data, size_t len, uint64_t lost, void* user) noexcept {
    auto* st = static_cast<message_state*>(user);
    if (st->failed.load(std::memory_order_acquire)) return;
    try {
        st->fn(bytes_view(data, len), lost);
    } catch (...) {
        st->error = std::current_exception();
        st->failed.store(true, std::memory_order_release);
    }
}

/// The C callback of a blackboard handler, as message_trampoline.
inline void update_trampoline(const void* data, size_t len, uint64_t version, uint64_t skipped,
                              void* user) noexcept {
    auto* st = static_cast<update_state*>(user);
    if (st->failed.load(std::memory_order_acquire)) return;
    try {
        st->fn(bytes_view(data, len), version, skipped);
    } catch (...) {
        st->error = std::current_exception();
        st->failed.store(true, std::memory_order_release);
    }
}

}  // namespace detail

// ---------------------------------------------------------------------------------------
// Options and channel configuration
// ---------------------------------------------------------------------------------------

/// Options for creating and opening objects (shmbus_options): namespace, permission bits,
/// persistence, waits, trusted owners. Set up first, then share freely between threads.
/// Pass a pointer (NULL for the defaults) to the create/open functions.
///
/// The setters check their argument before calling C and throw invalid_error without
/// touching the options (a failed shmbus_options_set_* call leaves them as they were, too).
class options {
public:
    /// New options with the defaults (namespace from SHMBUS_NAMESPACE, mode 0600, ...).
    options() : h_(create()) {}
    options(const options&) = delete;
    options& operator=(const options&) = delete;
    /// Takes over `o`'s handle, leaving it empty.
    options(options&& o) noexcept = default;
    /// Closes this handle and takes over `o`'s.
    options& operator=(options&& o) noexcept = default;
    /// Closes the handle (shmbus_options_close).
    ~options() = default;

    /// Uses namespace `ns` (1 to 32 of A-Z a-z 0-9 _ -).
    options& namespace_(const std::string& ns) & {
        bool ok = !ns.empty() && ns.size() <= 32 &&
                  std::all_of(ns.begin(), ns.end(), [](char c) {
                      return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                             (c >= '0' && c <= '9') || c == '_' || c == '-';
                  });
        if (!ok) {
            throw invalid_error("shmbus::options::namespace_: \"" + ns +
                                "\" is not a namespace (1 to 32 characters of A-Z a-z 0-9 _ -)");
        }
        check(shmbus_options_set_namespace(h_.get(), ns.c_str()));
        return *this;
    }
    /// Uses namespace `ns` (on a temporary).
    options&& namespace_(const std::string& ns) && { return std::move(namespace_(ns)); }
    /// Uses the default namespace (SHMBUS_NAMESPACE, or none).
    options& default_namespace() & {
        check(shmbus_options_set_namespace(h_.get(), nullptr));
        return *this;
    }
    /// Uses the default namespace (on a temporary).
    options&& default_namespace() && { return std::move(default_namespace()); }
    /// Permission bits of objects created (e.g. 0660; default 0600).
    options& mode(uint32_t bits) & {
        if (bits & ~uint32_t{0777}) {
            throw invalid_error("shmbus::options::mode: " + std::to_string(bits) +
                                " is not a set of permission bits (0 to 0777)");
        }
        check(shmbus_options_set_mode(h_.get(), bits));
        return *this;
    }
    /// Permission bits of objects created (on a temporary).
    options&& mode(uint32_t bits) && { return std::move(mode(bits)); }
    /// Whether objects created outlive their creator.
    options& persistent(bool on = true) & {
        check(shmbus_options_set_persistent(h_.get(), on ? 1 : 0));
        return *this;
    }
    /// Whether objects created outlive their creator (on a temporary).
    options&& persistent(bool on = true) && { return std::move(persistent(on)); }
    /// How long an open waits for an object still being initialised (not negative).
    options& open_timeout(std::chrono::nanoseconds t) & {
        not_negative(t, "open_timeout");
        check(shmbus_options_set_open_timeout(h_.get(), static_cast<int64_t>(t.count())));
        return *this;
    }
    /// How long an open waits for an object still being initialised (on a temporary).
    options&& open_timeout(std::chrono::nanoseconds t) && { return std::move(open_timeout(t)); }
    /// How long blocking calls busy-wait before sleeping (not negative; 0 never spins).
    options& spin(std::chrono::nanoseconds t) & {
        not_negative(t, "spin");
        check(shmbus_options_set_spin(h_.get(), static_cast<int64_t>(t.count())));
        return *this;
    }
    /// How long blocking calls busy-wait before sleeping (on a temporary).
    options&& spin(std::chrono::nanoseconds t) && { return std::move(spin(t)); }
    /// Also opens objects that belong to user `uid`.
    options& allow_owner(uint32_t uid) & {
        check(shmbus_options_allow_owner(h_.get(), uid));
        return *this;
    }
    /// Also opens objects that belong to user `uid` (on a temporary).
    options&& allow_owner(uint32_t uid) && { return std::move(allow_owner(uid)); }
    /// Opens objects whoever owns them (turns the owner check off).
    options& allow_any_owner() & {
        check(shmbus_options_allow_any_owner(h_.get()));
        return *this;
    }
    /// Opens objects whoever owns them (on a temporary).
    options&& allow_any_owner() && { return std::move(allow_any_owner()); }
    /// Opens only objects that belong to user `uid`.
    options& require_owner(uint32_t uid) & {
        check(shmbus_options_require_owner(h_.get(), uid));
        return *this;
    }
    /// Opens only objects that belong to user `uid` (on a temporary).
    options&& require_owner(uint32_t uid) && { return std::move(require_owner(uid)); }

    /// The C handle (NULL once moved from).
    const shmbus_options* get() const noexcept { return h_.get(); }
    /// Whether this object holds a handle (false once moved from).
    explicit operator bool() const noexcept { return h_.get() != nullptr; }

private:
    using handle = detail::unique_handle<shmbus_options, &shmbus_options_close>;

    /// A new C options handle.
    static handle create() {
        shmbus_options* o = nullptr;
        check(shmbus_options_create(&o));
        return handle(o);
    }

    /// Refuses a negative duration before C sees it (see the class comment).
    static void not_negative(std::chrono::nanoseconds t, const char* what) {
        if (t.count() < 0) {
            throw invalid_error(std::string("shmbus::options::") + what + ": the duration (" +
                                std::to_string(t.count()) + " ns) is negative");
        }
    }

    handle h_;
};

namespace detail {

/// The C options of `opts`: NULL for the defaults; a moved-from options object is refused
/// rather than silently replaced by the defaults.
inline const shmbus_options* opts_of(const options* opts) {
    if (!opts) return nullptr;
    if (!opts->get()) throw invalid_error("the shmbus::options object was moved from");
    return opts->get();
}

}  // namespace detail

/// The mode of a channel, fixed at creation.
enum class channel_mode : int {
    lossy = SHMBUS_LOSSY,                ///< A slow subscriber loses messages and is told how many.
    backpressure = SHMBUS_BACKPRESSURE,  ///< The publisher waits for the slowest subscriber.
};

/// The shape of a channel (shmbus_channel_config), with the library's defaults and fluent
/// setters. A plain value (it owns no handle, so it may also be copied).
class channel_config {
public:
    /// The default configuration (256 KiB ring, 16 KiB messages, lossy, 16 subscribers).
    channel_config() noexcept { shmbus_channel_config_default(&c_); }
    /// Wraps a C configuration.
    explicit channel_config(const shmbus_channel_config& c) noexcept : c_(c) {}
    /// The default configuration for a ring of `capacity` bytes, with the largest message
    /// that fits it.
    static channel_config with_capacity(size_t capacity) noexcept {
        shmbus_channel_config c{};
        shmbus_channel_config_with_capacity(&c, capacity);
        return channel_config(c);
    }

    /// Ring size in bytes (a power of two, at least 64).
    channel_config& capacity(size_t bytes) noexcept { c_.capacity = bytes; return *this; }
    /// Largest message in bytes (at most capacity / 2 - 16).
    channel_config& max_message(size_t bytes) noexcept { c_.max_message = bytes; return *this; }
    /// Lossy or back-pressure.
    channel_config& mode(channel_mode m) noexcept { c_.mode = static_cast<int>(m); return *this; }
    /// Shorthand for mode(channel_mode::lossy).
    channel_config& lossy() noexcept { return mode(channel_mode::lossy); }
    /// Shorthand for mode(channel_mode::backpressure).
    channel_config& backpressure() noexcept { return mode(channel_mode::backpressure); }
    /// How many subscribers may attach at once (1 to 1024).
    channel_config& max_subscribers(size_t n) noexcept { c_.max_subscribers = n; return *this; }

    /// Ring size in bytes.
    size_t capacity() const noexcept { return c_.capacity; }
    /// Largest message in bytes.
    size_t max_message() const noexcept { return c_.max_message; }
    /// Lossy or back-pressure.
    channel_mode mode() const noexcept { return static_cast<channel_mode>(c_.mode); }
    /// How many subscribers may attach at once.
    size_t max_subscribers() const noexcept { return c_.max_subscribers; }
    /// The C configuration.
    const shmbus_channel_config& raw() const noexcept { return c_; }

private:
    shmbus_channel_config c_{};
};

// ---------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------

class subscriber;
class blackboard;
class keyed_blackboard;

/// A running receive handler (shmbus_handler): a background thread that calls a callback
/// for each message or value. The destructor stops it (waiting for a callback in
/// progress); stop() also says what it did and reports failures. The callback must not
/// destroy or stop its own handler.
class handler {
public:
    /// What a handler did before it stopped.
    struct stats {
        uint64_t delivered = 0;  ///< Messages or values delivered to the callback.
        uint64_t skipped = 0;    ///< Messages lost or versions skipped in all.
    };

    /// An empty handler (nothing runs).
    handler() noexcept = default;
    handler(const handler&) = delete;
    handler& operator=(const handler&) = delete;
    /// Takes over `o`'s handler, leaving it empty.
    handler(handler&& o) noexcept = default;
    /// Stops this handler, then takes over `o`'s.
    handler& operator=(handler&& o) noexcept {
        if (this != &o) {
            h_.reset();  // joins the thread before its callback state goes
            h_ = std::move(o.h_);
            state_ = std::move(o.state_);
        }
        return *this;
    }
    /// Stops the handler and waits for its thread (shmbus_handler_close); a failure or an
    /// exception of the callback is dropped (use stop() to see it).
    ~handler() { h_.reset(); }

    /// Stops the handler, waits for its thread and returns what it did. Rethrows the first
    /// exception the callback threw (the handler stopped calling it then); throws
    /// shmbus::error when the handler failed (for example publisher_gone_error). Returns
    /// zero stats for an empty handler. Afterwards the handler is empty.
    stats stop() {
        std::unique_ptr<detail::callback_state> state = std::move(state_);
        if (!h_.get()) {
            if (state && state->error) std::rethrow_exception(state->error);
            return stats{};
        }
        shmbus_handler_stats s{};
        int rc = shmbus_handler_stop(h_.release(), &s);  // frees the handle in every case
        std::string message = rc < 0 ? detail::last_error_message() : std::string();
        if (state && state->error) std::rethrow_exception(state->error);
        if (rc < 0) detail::raise(rc, message);
        return stats{s.delivered, s.skipped};
    }

    /// Whether the handler's thread has finished (the stream ended, or it failed); true for
    /// an empty handler.
    bool is_finished() const {
        if (!h_.get()) return true;
        return check(shmbus_handler_is_finished(h_.get())) != 0;
    }

    /// Whether the callback has thrown (stop() rethrows the exception).
    bool failed() const noexcept {
        return state_ && state_->failed.load(std::memory_order_acquire);
    }

    /// Whether a handler runs (or ran and was not stopped yet).
    explicit operator bool() const noexcept { return h_.get() != nullptr; }

private:
    friend class subscriber;
    friend class blackboard;
    friend class keyed_blackboard;
    handler(shmbus_handler* h, std::unique_ptr<detail::callback_state> state) noexcept
        : state_(std::move(state)), h_(h) {}

    // Declared first so that it is destroyed last: the C thread may use it until stopped.
    std::unique_ptr<detail::callback_state> state_;
    detail::unique_handle<shmbus_handler, &shmbus_handler_close> h_;
};

// ---------------------------------------------------------------------------------------
// Channels: publisher, loan, subscriber, sample
// ---------------------------------------------------------------------------------------

class publisher;

/// A zero-copy send in progress (shmbus_publisher_loan): `size()` bytes inside the ring to
/// fill, then commit(). Destroying it uncommitted discards it (nothing is published). A
/// later send or loan on the same publisher discards it too; it must not outlive its
/// publisher.
class loan {
public:
    /// An empty loan.
    loan() noexcept = default;
    loan(const loan&) = delete;
    loan& operator=(const loan&) = delete;
    /// Takes over `o`'s loan, leaving it empty.
    loan(loan&& o) noexcept
        : owner_(std::exchange(o.owner_, nullptr)),
          gen_(o.gen_),
          data_(std::exchange(o.data_, nullptr)),
          size_(std::exchange(o.size_, 0)) {}
    /// Discards this loan (if still held), then takes over `o`'s.
    loan& operator=(loan&& o) noexcept {
        if (this != &o) {
            discard();
            owner_ = std::exchange(o.owner_, nullptr);
            gen_ = o.gen_;
            data_ = std::exchange(o.data_, nullptr);
            size_ = std::exchange(o.size_, 0);
        }
        return *this;
    }
    /// Discards the loan if it was neither committed nor superseded.
    ~loan() { discard(); }

    /// The loaned bytes (write the message here).
    uint8_t* data() const noexcept { return data_; }
    /// How many bytes were loaned (the message's length).
    size_t size() const noexcept { return size_; }
    /// The loaned bytes as a writable view.
    mut_bytes bytes() const noexcept { return mut_bytes(data_, size_); }
    /// Whether the loan is still held: taken, not committed, discarded or superseded.
    bool active() const noexcept;

    /// Publishes the loan. Throws no_loan_error when it was committed or discarded already,
    /// or superseded by a later send or loan on the publisher.
    void commit();

    /// Gives the loan up (nothing is published); harmless when not held.
    void discard() noexcept;

private:
    friend class publisher;
    using state = detail::gen_handle<shmbus_publisher, &shmbus_publisher_close>;
    loan(state* owner, uint64_t gen, void* data, size_t size) noexcept
        : owner_(owner), gen_(gen), data_(static_cast<uint8_t*>(data)), size_(size) {}

    state* owner_ = nullptr;
    uint64_t gen_ = 0;
    uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

/// The one publisher of a channel (shmbus_publisher). Use it from one thread at a time.
/// Destroying it ends the stream: subscribers drain what is left, then get
/// disconnected_error; the channel is removed unless the options made it persistent.
class publisher {
public:
    /// An empty publisher.
    publisher() noexcept = default;
    publisher(const publisher&) = delete;
    publisher& operator=(const publisher&) = delete;
    /// Takes over `o`'s channel, leaving it empty.
    publisher(publisher&& o) noexcept = default;
    /// Closes this publisher's channel, then takes over `o`'s.
    publisher& operator=(publisher&& o) noexcept = default;
    /// Closes the publisher (shmbus_publisher_close).
    ~publisher() = default;

    /// Creates channel `name` with `cfg` and becomes its publisher (exists_error if it
    /// exists). `opts` NULL means the defaults.
    static publisher create(const std::string& name, const channel_config& cfg = channel_config(),
                            const options* opts = nullptr) {
        auto st = std::make_unique<state>();
        shmbus_publisher* p = nullptr;
        check(shmbus_publisher_create_with(name.c_str(), &cfg.raw(), detail::opts_of(opts), &p));
        st->h = handle(p);
        return publisher(std::move(st));
    }

    /// Becomes the publisher of existing channel `name` (whose publisher closed or died).
    static publisher open(const std::string& name, const options* opts = nullptr) {
        auto st = std::make_unique<state>();
        shmbus_publisher* p = nullptr;
        check(shmbus_publisher_open(name.c_str(), detail::opts_of(opts), &p));
        st->h = handle(p);
        return publisher(std::move(st));
    }

    /// Publishes `len` bytes at `data`. Lossy: never waits; back-pressure: waits for room.
    void send(const void* data, size_t len) {
        bump();
        check(shmbus_publisher_send(raw(), data, len));
    }
    /// Publishes the characters of `s`.
    void send(std::string_view s) { send(s.data(), s.size()); }
    /// Publishes the bytes of `b`.
    void send(bytes_view b) { send(b.data(), b.size()); }

    /// Publishes `len` bytes at `data` if there is room now: false when a back-pressure
    /// channel is full.
    bool try_send(const void* data, size_t len) { return send_ns(data, len, 0); }
    /// try_send of the characters of `s`.
    bool try_send(std::string_view s) { return try_send(s.data(), s.size()); }
    /// try_send of the bytes of `b`.
    bool try_send(bytes_view b) { return try_send(b.data(), b.size()); }

    /// Publishes `len` bytes at `data`, waiting at most `timeout` for room: false when the
    /// time passed (or, for a zero timeout, the channel was full).
    bool send_for(const void* data, size_t len, std::chrono::nanoseconds timeout) {
        return send_ns(data, len, detail::to_ns(timeout));
    }
    /// send_for of the characters of `s`.
    bool send_for(std::string_view s, std::chrono::nanoseconds timeout) {
        return send_for(s.data(), s.size(), timeout);
    }
    /// send_for of the bytes of `b`.
    bool send_for(bytes_view b, std::chrono::nanoseconds timeout) {
        return send_for(b.data(), b.size(), timeout);
    }

    /// Reserves `len` bytes in the ring for a zero-copy send, waiting at most `timeout` for
    /// room (timeout_error; full_error for a zero timeout). Discards an earlier loan.
    shmbus::loan loan(size_t len, std::chrono::nanoseconds timeout = forever) {
        bump();
        void* buf = nullptr;
        check(shmbus_publisher_loan_timeout(raw(), len, &buf, detail::to_ns(timeout)));
        return shmbus::loan(st_.get(), st_->gen, buf, len);
    }

    /// Messages published on the channel so far (0 when empty).
    uint64_t published() const noexcept { return shmbus_publisher_published(raw()); }
    /// Live subscribers attached now (0 when empty).
    size_t subscriber_count() const noexcept { return shmbus_publisher_subscriber_count(raw()); }
    /// The channel's configuration.
    channel_config config() const {
        shmbus_channel_config c{};
        check(shmbus_publisher_config(raw(), &c));
        return channel_config(c);
    }

    /// The C handle (NULL when empty); it stays owned by this object.
    shmbus_publisher* raw() const noexcept { return st_ ? st_->h.get() : nullptr; }
    /// Whether this object holds a publisher.
    explicit operator bool() const noexcept { return raw() != nullptr; }

private:
    using handle = detail::unique_handle<shmbus_publisher, &shmbus_publisher_close>;
    using state = detail::gen_handle<shmbus_publisher, &shmbus_publisher_close>;
    explicit publisher(std::unique_ptr<state> st) noexcept : st_(std::move(st)) {}

    /// Marks every outstanding loan superseded (a send or loan discards the held one).
    void bump() noexcept {
        if (st_) ++st_->gen;
    }

    /// One send with a C timeout: false on FULL or TIMEOUT.
    bool send_ns(const void* data, size_t len, int64_t ns) {
        bump();
        int rc = shmbus_publisher_send_timeout(raw(), data, len, ns);
        if (rc == SHMBUS_ERR_FULL || rc == SHMBUS_ERR_TIMEOUT) return false;
        check(rc);
        return true;
    }

    std::unique_ptr<state> st_;
};

inline bool loan::active() const noexcept {
    return owner_ != nullptr && owner_->gen == gen_;
}

inline void loan::commit() {
    if (!owner_) throw no_loan_error("shmbus::loan::commit: this loan was committed or discarded already");
    if (owner_->gen != gen_) {
        owner_ = nullptr;
        throw no_loan_error(
            "shmbus::loan::commit: a later send or loan on the publisher discarded this loan");
    }
    state* owner = std::exchange(owner_, nullptr);
    ++owner->gen;
    check(shmbus_publisher_commit(owner->h.get()));
}

inline void loan::discard() noexcept {
    state* owner = std::exchange(owner_, nullptr);
    if (owner && owner->gen == gen_) {
        ++owner->gen;
        shmbus_publisher_discard(owner->h.get());
    }
}

/// A message borrowed in place in the ring by subscriber::recv_ref (back-pressure
/// channels): read it through the bytes_view accessors; destroying it (or release())
/// gives it back (shmbus_subscriber_release). The next receive on the subscriber ends the
/// borrow too; a sample must not outlive its subscriber. The publisher may reuse the room
/// from the release on.
class sample {
public:
    /// An empty sample.
    sample() noexcept = default;
    sample(const sample&) = delete;
    sample& operator=(const sample&) = delete;
    /// Takes over `o`'s borrow, leaving it empty.
    sample(sample&& o) noexcept
        : owner_(std::exchange(o.owner_, nullptr)), gen_(o.gen_), view_(std::exchange(o.view_, {})) {}
    /// Releases this borrow, then takes over `o`'s.
    sample& operator=(sample&& o) noexcept {
        if (this != &o) {
            release();
            owner_ = std::exchange(o.owner_, nullptr);
            gen_ = o.gen_;
            view_ = std::exchange(o.view_, {});
        }
        return *this;
    }
    /// Releases the borrow, unless a later receive ended it already.
    ~sample() { release(); }

    /// The message's bytes.
    bytes_view view() const noexcept { return view_; }
    /// The message's first byte.
    const uint8_t* data() const noexcept { return view_.data(); }
    /// The message's length.
    size_t size() const noexcept { return view_.size(); }
    /// Whether the message is empty.
    bool empty() const noexcept { return view_.empty(); }
    /// Iterator to the first byte.
    const uint8_t* begin() const noexcept { return view_.begin(); }
    /// Iterator past the last byte.
    const uint8_t* end() const noexcept { return view_.end(); }
    /// Byte `i` (unchecked).
    const uint8_t& operator[](size_t i) const noexcept { return view_[i]; }
    /// A copy of the message as a std::string.
    std::string to_string() const { return view_.to_string(); }
    /// A copy of the message as a std::vector<uint8_t>.
    std::vector<uint8_t> to_vector() const { return view_.to_vector(); }
    /// The message's bytes.
    operator bytes_view() const noexcept { return view_; }
    /// Whether the borrow still holds (not released, no later receive).
    bool valid() const noexcept { return owner_ != nullptr && owner_->gen == gen_; }

    /// Ends the borrow early; the bytes must not be read afterwards.
    void release() noexcept {
        state* owner = std::exchange(owner_, nullptr);
        if (owner && owner->gen == gen_) {
            ++owner->gen;
            shmbus_subscriber_release(owner->h.get());
        }
    }

private:
    friend class subscriber;
    using state = detail::gen_handle<shmbus_subscriber, &shmbus_subscriber_close>;
    sample(state* owner, uint64_t gen, bytes_view view) noexcept
        : owner_(owner), gen_(gen), view_(view) {}

    state* owner_ = nullptr;
    uint64_t gen_ = 0;
    bytes_view view_;
};

/// A subscriber of a channel (shmbus_subscriber). Use it from one thread at a time.
class subscriber {
public:
    /// An empty subscriber.
    subscriber() noexcept = default;
    subscriber(const subscriber&) = delete;
    subscriber& operator=(const subscriber&) = delete;
    /// Takes over `o`'s subscription, leaving it empty.
    subscriber(subscriber&& o) noexcept = default;
    /// Leaves this subscriber's channel, then takes over `o`'s subscription.
    subscriber& operator=(subscriber&& o) noexcept = default;
    /// Leaves the channel (shmbus_subscriber_close).
    ~subscriber() = default;

    /// Subscribes to existing channel `name` (not_found_error if missing), starting with the
    /// next message published, or with `from_oldest` the oldest one the ring still holds.
    static subscriber open(const std::string& name, const options* opts = nullptr,
                           bool from_oldest = false) {
        auto st = std::make_unique<state>();
        shmbus_subscriber* s = nullptr;
        check(shmbus_subscriber_open_with(name.c_str(), detail::opts_of(opts), from_oldest ? 1 : 0,
                                          &s));
        st->h = handle(s);
        return subscriber(std::move(st));
    }

    /// Receives the next message, waiting as long as it takes; the buffer grows to fit.
    /// Throws lagged_error (lossy: messages were lost; call again), disconnected_error at
    /// the end of the stream, publisher_gone_error when the publisher died.
    std::vector<uint8_t> recv() {
        std::vector<uint8_t> v;
        int rc = recv_vec(v, -1);
        if (rc < 0) raise(rc);
        return v;
    }

    /// recv() waiting at most `timeout`: std::nullopt when it passes (or, for a zero
    /// timeout, when no message waits).
    std::optional<std::vector<uint8_t>> recv_for(std::chrono::nanoseconds timeout) {
        std::vector<uint8_t> v;
        int rc = recv_vec(v, detail::to_ns(timeout));
        if (rc == SHMBUS_ERR_TIMEOUT || rc == SHMBUS_ERR_EMPTY) return std::nullopt;
        if (rc < 0) raise(rc);
        return v;
    }

    /// The next message if one waits now: std::nullopt otherwise. Throws like recv().
    std::optional<std::vector<uint8_t>> try_recv() { return recv_for(std::chrono::nanoseconds(0)); }

    /// Receives the next message into `buf` (`cap` bytes) and returns its length, waiting
    /// at most `timeout`: timeout_error when it passes (empty_error for a zero timeout),
    /// too_small_error (needed()) when the message is longer than `cap` (it stays unread),
    /// and otherwise as recv().
    size_t recv_into(void* buf, size_t cap, std::chrono::nanoseconds timeout = forever) {
        if (st_) ++st_->gen;  // any receive ends the previous borrow
        size_t len = 0;
        int rc = shmbus_subscriber_recv(raw(), buf, cap, &len, detail::to_ns(timeout));
        if (rc < 0) {
            std::string message = detail::last_error_message();
            detail::raise(rc, message, len, rc == SHMBUS_ERR_LAGGED ? take_lag() : 0);
        }
        return len;
    }
    /// recv_into a writable view.
    size_t recv_into(mut_bytes buf, std::chrono::nanoseconds timeout = forever) {
        return recv_into(buf.data(), buf.size(), timeout);
    }

    /// Zero-copy receive (back-pressure channels; wrong_mode_error on lossy ones): the next
    /// message, in place in the ring, waiting at most `timeout` (timeout_error;
    /// empty_error for a zero timeout). Ends the borrow of an earlier sample.
    sample recv_ref(std::chrono::nanoseconds timeout = forever) {
        if (st_) ++st_->gen;  // any receive ends the previous borrow
        const void* data = nullptr;
        size_t len = 0;
        int rc = shmbus_subscriber_recv_ref(raw(), &data, &len, detail::to_ns(timeout));
        if (rc < 0) throw_error(rc);  // this call's message (shmbus_last_error)
        return sample(st_.get(), st_->gen, bytes_view(data, len));
    }

    /// Messages lost so far on a lossy channel (0 in back-pressure mode, or when empty).
    uint64_t lost() const noexcept { return shmbus_subscriber_lost(raw()); }

    /// Whether the channel's publisher lives now.
    bool publisher_alive() const { return check(shmbus_subscriber_publisher_alive(raw())) != 0; }

    /// The channel's configuration.
    channel_config config() const {
        shmbus_channel_config c{};
        check(shmbus_subscriber_config(raw(), &c));
        return channel_config(c);
    }

    /// Consumes the subscriber and runs `fn(bytes, lost)` on a background thread for each
    /// message (bytes valid only during the call; lost: messages lost just before it) until
    /// the stream ends or the handler is stopped. The std::function lives on the heap,
    /// owned by the returned handler. An exception from `fn` never reaches the C library:
    /// the first one is kept, later messages are no longer passed to `fn`, and
    /// handler::stop() rethrows it. Use as `std::move(sub).on_message(...)`.
    handler on_message(std::function<void(bytes_view, uint64_t)> fn) && {
        if (!fn) throw invalid_error("shmbus::subscriber::on_message: the callback is empty");
        auto st = std::make_unique<detail::message_state>();
        st->fn = std::move(fn);
        shmbus_subscriber* s = raw();
        if (st_) {
            ++st_->gen;
            st_->h.release();  // the C call consumes the subscriber in every case
        }
        st_.reset();
        shmbus_handler* out = nullptr;
        int rc = shmbus_subscriber_on_message(s, &detail::message_trampoline, st.get(), &out);
        if (rc < 0) throw_error(rc);
        return handler(out, std::move(st));
    }

    /// The C handle (NULL when empty); it stays owned by this object. (Receiving through it
    /// directly skews the lost() count of the next lagged_error.)
    shmbus_subscriber* raw() const noexcept { return st_ ? st_->h.get() : nullptr; }
    /// Whether this object holds a subscription.
    explicit operator bool() const noexcept { return raw() != nullptr; }

private:
    using handle = detail::unique_handle<shmbus_subscriber, &shmbus_subscriber_close>;
    using state = detail::gen_handle<shmbus_subscriber, &shmbus_subscriber_close>;
    explicit subscriber(std::unique_ptr<state> st) noexcept : st_(std::move(st)) {}

    /// Receives into `v`, growing it on SHMBUS_ERR_TOO_SMALL; returns the C status (OK, or
    /// an error for the caller to turn into a result or an exception). The message and, for
    /// a lag, the count are kept for raise().
    int recv_vec(std::vector<uint8_t>& v, int64_t ns) {
        if (st_) ++st_->gen;  // any receive ends the previous borrow
        v.resize(hint_);
        for (;;) {
            size_t len = 0;
            int rc = shmbus_subscriber_recv(raw(), v.data(), v.size(), &len, ns);
            if (rc == SHMBUS_OK) {
                v.resize(len);
                return rc;
            }
            if (rc == SHMBUS_ERR_TOO_SMALL && len > v.size()) {
                // The message stays unread: retry with a buffer of the size needed.
                hint_ = std::max(hint_, len);
                v.resize(len);
                continue;
            }
            message_ = detail::last_error_message();
            lag_ = rc == SHMBUS_ERR_LAGGED ? take_lag() : 0;
            v.clear();
            return rc;
        }
    }

    /// Throws for status `rc` of recv_vec.
    [[noreturn]] void raise(int rc) { detail::raise(rc, message_, 0, lag_); }

    /// After SHMBUS_ERR_LAGGED: how many messages it reported lost (the growth of
    /// shmbus_subscriber_lost since the previous lag, which only this object's receives
    /// cause).
    uint64_t take_lag() noexcept {
        uint64_t now = lost();
        uint64_t lag = now - lost_seen_;
        lost_seen_ = now;
        return lag;
    }

    std::unique_ptr<state> st_;
    size_t hint_ = 256;      ///< Initial receive buffer: the largest message seen so far.
    uint64_t lost_seen_ = 0;  ///< shmbus_subscriber_lost after the last lag.
    std::string message_;    ///< The message of the last failed recv_vec.
    uint64_t lag_ = 0;       ///< The count of the last lag of recv_vec.
};

// ---------------------------------------------------------------------------------------
// Blackboard
// ---------------------------------------------------------------------------------------

/// The latest value of something, readable by anyone at any time (shmbus_blackboard).
/// Threads may share one object.
class blackboard {
public:
    /// An empty blackboard object.
    blackboard() noexcept = default;
    blackboard(const blackboard&) = delete;
    blackboard& operator=(const blackboard&) = delete;
    /// Takes over `o`'s handle, leaving it empty.
    blackboard(blackboard&& o) noexcept
        : h_(std::move(o.h_)), hint_(o.hint_.load(std::memory_order_relaxed)) {}
    /// Closes this handle, then takes over `o`'s.
    blackboard& operator=(blackboard&& o) noexcept {
        h_ = std::move(o.h_);
        hint_.store(o.hint_.load(std::memory_order_relaxed), std::memory_order_relaxed);
        return *this;
    }
    /// Closes the handle (the creator's close removes the blackboard unless persistent).
    ~blackboard() = default;

    /// Creates blackboard `name` for values of up to `capacity` bytes (version 0, no value).
    static blackboard create(const std::string& name, size_t capacity,
                             const options* opts = nullptr) {
        shmbus_blackboard* b = nullptr;
        check(shmbus_blackboard_create_with(name.c_str(), capacity, detail::opts_of(opts), &b));
        return blackboard(b);
    }
    /// Opens existing blackboard `name`.
    static blackboard open(const std::string& name, const options* opts = nullptr) {
        shmbus_blackboard* b = nullptr;
        check(shmbus_blackboard_open_with(name.c_str(), detail::opts_of(opts), &b));
        return blackboard(b);
    }
    /// Opens blackboard `name`, or creates it with `capacity`. shmbus.h promises
    /// mismatch_error if it exists with another capacity, but the library (0.1.0) opens it
    /// with its own capacity: check capacity() when it matters.
    static blackboard create_or_open(const std::string& name, size_t capacity,
                                     const options* opts = nullptr) {
        shmbus_blackboard* b = nullptr;
        check(shmbus_blackboard_create_or_open(name.c_str(), capacity, detail::opts_of(opts), &b));
        return blackboard(b);
    }

    /// Replaces the value with `len` bytes at `data` (too_large_error beyond the capacity).
    void write(const void* data, size_t len) {
        check(shmbus_blackboard_write(h_.get(), data, len));
    }
    /// Replaces the value with the characters of `s`.
    void write(std::string_view s) { write(s.data(), s.size()); }
    /// Replaces the value with the bytes of `b`.
    void write(bytes_view b) { write(b.data(), b.size()); }

    /// The current version and value (version 0 and no bytes before the first write).
    std::pair<uint64_t, std::vector<uint8_t>> read() {
        std::vector<uint8_t> v(hint_.load(std::memory_order_relaxed));
        for (;;) {
            size_t len = 0;
            uint64_t ver = 0;
            int rc = shmbus_blackboard_read(h_.get(), v.data(), v.size(), &len, &ver);
            if (rc == SHMBUS_OK) {
                v.resize(len);
                return {ver, std::move(v)};
            }
            if (rc == SHMBUS_ERR_TOO_SMALL && len > v.size()) {
                // The value grew past the buffer: retry with the size needed.
                size_t seen = hint_.load(std::memory_order_relaxed);
                while (seen < len && !hint_.compare_exchange_weak(seen, len, std::memory_order_relaxed)) {
                }
                v.resize(len);
                continue;
            }
            detail::raise(rc, detail::last_error_message(), len);
        }
    }

    /// Copies the current value into `buf` (`cap` bytes) and returns its length; its
    /// version goes to `*version` (if not NULL). too_small_error (needed()) when it does
    /// not fit; a buffer of capacity() bytes always does.
    size_t read_into(void* buf, size_t cap, uint64_t* version = nullptr) {
        size_t len = 0;
        int rc = shmbus_blackboard_read(h_.get(), buf, cap, &len, version);
        if (rc < 0) detail::raise(rc, detail::last_error_message(), len);
        return len;
    }
    /// read_into a writable view.
    size_t read_into(mut_bytes buf, uint64_t* version = nullptr) {
        return read_into(buf.data(), buf.size(), version);
    }

    /// The version of the current value (counts writes since creation; 0 when empty).
    uint64_t version() const noexcept { return shmbus_blackboard_version(h_.get()); }
    /// The largest value the blackboard holds, in bytes (0 when empty).
    size_t capacity() const noexcept { return shmbus_blackboard_capacity(h_.get()); }

    /// Waits until the version is newer than `version` and returns the new one, or
    /// std::nullopt when `timeout` passes first.
    std::optional<uint64_t> wait_newer(uint64_t version,
                                       std::chrono::nanoseconds timeout = forever) const {
        uint64_t newer = 0;
        int rc = shmbus_blackboard_wait_newer(h_.get(), version, detail::to_ns(timeout), &newer);
        if (rc == SHMBUS_ERR_TIMEOUT) return std::nullopt;
        check(rc);
        return newer;
    }

    /// Runs `fn(bytes, version, skipped)` on a background thread for every version written
    /// after `after_version` (0: the current value first, if there is one; pass version()
    /// for new writes only). A callback slower than the writer sees the newest value and
    /// is told how many versions it skipped. The std::function lives on the heap, owned by
    /// the returned handler (which may outlive this object). Exceptions from `fn` are kept,
    /// never passed to C: see subscriber::on_message.
    handler on_update(std::function<void(bytes_view, uint64_t, uint64_t)> fn,
                      uint64_t after_version = 0) const {
        if (!fn) throw invalid_error("shmbus::blackboard::on_update: the callback is empty");
        auto st = std::make_unique<detail::update_state>();
        st->fn = std::move(fn);
        shmbus_handler* out = nullptr;
        check(shmbus_blackboard_on_update(h_.get(), after_version, &detail::update_trampoline,
                                          st.get(), &out));
        return handler(out, std::move(st));
    }

    /// The C handle (NULL when empty); it stays owned by this object.
    shmbus_blackboard* raw() const noexcept { return h_.get(); }
    /// Whether this object holds a handle.
    explicit operator bool() const noexcept { return h_.get() != nullptr; }

private:
    explicit blackboard(shmbus_blackboard* b) noexcept : h_(b) {}
    detail::unique_handle<shmbus_blackboard, &shmbus_blackboard_close> h_;
    std::atomic<size_t> hint_{256};  ///< Initial read buffer: the largest value seen so far.
};

// ---------------------------------------------------------------------------------------
// Keyed blackboard
// ---------------------------------------------------------------------------------------

/// A fixed set of named keys, each its own blackboard (shmbus_keyed_blackboard): the keys are
/// chosen at creation and every opener sees the same ones; each key has its own value,
/// version, waiters and handlers, and writers of different keys never contend. A key the
/// board lacks throws unknown_key_error. Threads may share one object.
class keyed_blackboard {
public:
    /// An empty keyed blackboard object.
    keyed_blackboard() noexcept = default;
    keyed_blackboard(const keyed_blackboard&) = delete;
    keyed_blackboard& operator=(const keyed_blackboard&) = delete;
    /// Takes over `o`'s handle, leaving it empty.
    keyed_blackboard(keyed_blackboard&& o) noexcept
        : h_(std::move(o.h_)), hint_(o.hint_.load(std::memory_order_relaxed)) {}
    /// Closes this handle, then takes over `o`'s.
    keyed_blackboard& operator=(keyed_blackboard&& o) noexcept {
        h_ = std::move(o.h_);
        hint_.store(o.hint_.load(std::memory_order_relaxed), std::memory_order_relaxed);
        return *this;
    }
    /// Closes the handle (the creator's close removes the board unless persistent).
    ~keyed_blackboard() = default;

    /// Creates keyed blackboard `name` with `keys` (1 to 4096 of them, each 1 to 60 bytes
    /// of UTF-8 without control characters, all different: invalid_error otherwise), each
    /// holding values of up to `capacity` bytes (version 0, no value).
    static keyed_blackboard create(const std::string& name, const std::vector<std::string>& keys,
                                   size_t capacity, const options* opts = nullptr) {
        std::vector<const char*> k = c_keys(keys);
        shmbus_keyed_blackboard* b = nullptr;
        check(shmbus_keyed_blackboard_create_with(name.c_str(), k.data(), k.size(), capacity,
                                                  detail::opts_of(opts), &b));
        return keyed_blackboard(b);
    }
    /// Opens existing keyed blackboard `name`, with the keys it was created with
    /// (mismatch_error for a plain blackboard).
    static keyed_blackboard open(const std::string& name, const options* opts = nullptr) {
        shmbus_keyed_blackboard* b = nullptr;
        check(shmbus_keyed_blackboard_open_with(name.c_str(), detail::opts_of(opts), &b));
        return keyed_blackboard(b);
    }
    /// Opens keyed blackboard `name`, or creates it with `keys` and `capacity` (race-free).
    /// The keys must be a valid set either way; an existing board keeps its own keys and
    /// capacity: check keys() and capacity() when it matters.
    static keyed_blackboard create_or_open(const std::string& name,
                                           const std::vector<std::string>& keys,
                                           size_t capacity, const options* opts = nullptr) {
        std::vector<const char*> k = c_keys(keys);
        shmbus_keyed_blackboard* b = nullptr;
        check(shmbus_keyed_blackboard_create_or_open(name.c_str(), k.data(), k.size(), capacity,
                                                     detail::opts_of(opts), &b));
        return keyed_blackboard(b);
    }

    /// The keys, in the order given at creation (none when empty).
    std::vector<std::string> keys() const {
        std::vector<std::string> out;
        size_t n = key_count();
        out.reserve(n);
        for (size_t i = 0; i < n; ++i) {
            const char* k = shmbus_keyed_blackboard_key(h_.get(), i);
            if (!k) throw_error(SHMBUS_ERR_INVALID);
            out.emplace_back(k);
        }
        return out;
    }
    /// How many keys the board has (0 when empty).
    size_t key_count() const noexcept { return shmbus_keyed_blackboard_key_count(h_.get()); }
    /// The largest value each key holds, in bytes (0 when empty).
    size_t capacity() const noexcept { return shmbus_keyed_blackboard_capacity(h_.get()); }

    /// Replaces the value of `key` with `len` bytes at `data` (too_large_error beyond the
    /// capacity).
    void write(const std::string& key, const void* data, size_t len) {
        check(shmbus_keyed_blackboard_write(h_.get(), key.c_str(), data, len));
    }
    /// Replaces the value of `key` with the characters of `s`.
    void write(const std::string& key, std::string_view s) { write(key, s.data(), s.size()); }
    /// Replaces the value of `key` with the bytes of `b`.
    void write(const std::string& key, bytes_view b) { write(key, b.data(), b.size()); }

    /// The current version and value of `key` (version 0 and no bytes before its first
    /// write).
    std::pair<uint64_t, std::vector<uint8_t>> read(const std::string& key) {
        std::vector<uint8_t> v(hint_.load(std::memory_order_relaxed));
        for (;;) {
            size_t len = 0;
            uint64_t ver = 0;
            int rc = shmbus_keyed_blackboard_read(h_.get(), key.c_str(), v.data(), v.size(), &len,
                                                  &ver);
            if (rc == SHMBUS_OK) {
                v.resize(len);
                return {ver, std::move(v)};
            }
            if (rc == SHMBUS_ERR_TOO_SMALL && len > v.size()) {
                // The value grew past the buffer: retry with the size needed.
                size_t seen = hint_.load(std::memory_order_relaxed);
                while (seen < len &&
                       !hint_.compare_exchange_weak(seen, len, std::memory_order_relaxed)) {
                }
                v.resize(len);
                continue;
            }
            detail::raise(rc, detail::last_error_message(), len);
        }
    }

    /// Copies the current value of `key` into `buf` (`cap` bytes) and returns its length;
    /// its version goes to `*version` (if not NULL). too_small_error (needed()) when it does
    /// not fit; a buffer of capacity() bytes always does.
    size_t read_into(const std::string& key, void* buf, size_t cap, uint64_t* version = nullptr) {
        size_t len = 0;
        int rc = shmbus_keyed_blackboard_read(h_.get(), key.c_str(), buf, cap, &len, version);
        if (rc < 0) detail::raise(rc, detail::last_error_message(), len);
        return len;
    }
    /// read_into a writable view.
    size_t read_into(const std::string& key, mut_bytes buf, uint64_t* version = nullptr) {
        return read_into(key, buf.data(), buf.size(), version);
    }

    /// The version of `key`'s current value (counts its writes since creation; 0 before
    /// the first). Unlike blackboard::version, it throws: unknown_key_error for a key the
    /// board lacks, invalid_error when empty.
    uint64_t version(const std::string& key) const {
        uint64_t v = 0;
        check(shmbus_keyed_blackboard_version(h_.get(), key.c_str(), &v));
        return v;
    }

    /// Waits until the version of `key` is newer than `version` and returns the new one, or
    /// std::nullopt when `timeout` passes first. Writes of other keys do not end the wait.
    std::optional<uint64_t> wait_newer(const std::string& key, uint64_t version,
                                       std::chrono::nanoseconds timeout = forever) const {
        uint64_t newer = 0;
        int rc = shmbus_keyed_blackboard_wait_newer(h_.get(), key.c_str(), version,
                                                    detail::to_ns(timeout), &newer);
        if (rc == SHMBUS_ERR_TIMEOUT) return std::nullopt;
        check(rc);
        return newer;
    }

    /// Runs `fn(bytes, version, skipped)` on a background thread for every version of
    /// `key` written after `after_version` (0: the key's current value first, if there is
    /// one; pass version(key) for new writes only). Writes of other keys do not call it.
    /// As blackboard::on_update otherwise.
    handler on_update(const std::string& key,
                      std::function<void(bytes_view, uint64_t, uint64_t)> fn,
                      uint64_t after_version = 0) const {
        if (!fn) {
            throw invalid_error("shmbus::keyed_blackboard::on_update: the callback is empty");
        }
        auto st = std::make_unique<detail::update_state>();
        st->fn = std::move(fn);
        shmbus_handler* out = nullptr;
        check(shmbus_keyed_blackboard_on_update(h_.get(), key.c_str(), after_version,
                                                &detail::update_trampoline, st.get(), &out));
        return handler(out, std::move(st));
    }

    /// The C handle (NULL when empty); it stays owned by this object.
    shmbus_keyed_blackboard* raw() const noexcept { return h_.get(); }
    /// Whether this object holds a handle.
    explicit operator bool() const noexcept { return h_.get() != nullptr; }

private:
    explicit keyed_blackboard(shmbus_keyed_blackboard* b) noexcept : h_(b) {}
    /// The keys as the C array create takes (valid while `keys` lives).
    static std::vector<const char*> c_keys(const std::vector<std::string>& keys) {
        std::vector<const char*> k;
        k.reserve(keys.size());
        for (const auto& key : keys) k.push_back(key.c_str());
        return k;
    }
    detail::unique_handle<shmbus_keyed_blackboard, &shmbus_keyed_blackboard_close> h_;
    std::atomic<size_t> hint_{256};  ///< Initial read buffer: the largest value seen so far.
};

// ---------------------------------------------------------------------------------------
// Event
// ---------------------------------------------------------------------------------------

/// A named event (shmbus_event): manual reset (stays set, releasing every waiter, until
/// reset) or auto-reset (each set releases one waiter). Threads may share one object.
class event {
public:
    /// An empty event object.
    event() noexcept = default;
    event(const event&) = delete;
    event& operator=(const event&) = delete;
    /// Takes over `o`'s handle, leaving it empty.
    event(event&& o) noexcept = default;
    /// Closes this handle, then takes over `o`'s.
    event& operator=(event&& o) noexcept = default;
    /// Closes the handle (the creator's close removes the event unless persistent).
    ~event() = default;

    /// Creates event `name`, unset.
    static event create(const std::string& name, bool manual_reset, const options* opts = nullptr) {
        shmbus_event* e = nullptr;
        check(shmbus_event_create_with(name.c_str(), manual_reset ? 1 : 0, detail::opts_of(opts), &e));
        return event(e);
    }
    /// Opens existing event `name`.
    static event open(const std::string& name, const options* opts = nullptr) {
        shmbus_event* e = nullptr;
        check(shmbus_event_open_with(name.c_str(), detail::opts_of(opts), &e));
        return event(e);
    }
    /// Opens event `name`, or creates it (mismatch_error if it exists with the other mode).
    static event create_or_open(const std::string& name, bool manual_reset,
                                const options* opts = nullptr) {
        shmbus_event* e = nullptr;
        check(shmbus_event_create_or_open(name.c_str(), manual_reset ? 1 : 0, detail::opts_of(opts),
                                          &e));
        return event(e);
    }

    /// Sets the event: wakes every waiter (manual reset) or one (auto-reset).
    void set() { check(shmbus_event_set(h_.get())); }
    /// Unsets the event.
    void reset() { check(shmbus_event_reset(h_.get())); }
    /// Whether the event is set now.
    bool is_set() const { return check(shmbus_event_is_set(h_.get())) != 0; }
    /// Waits as long as it takes for the event (taking it, in auto-reset mode).
    void wait() { check(shmbus_event_wait(h_.get(), -1)); }
    /// Waits at most `timeout` for the event: false when it passes (a zero timeout only
    /// checks, taking the event if set in auto-reset mode).
    bool wait_for(std::chrono::nanoseconds timeout) {
        int rc = shmbus_event_wait(h_.get(), detail::to_ns(timeout));
        if (rc == SHMBUS_ERR_TIMEOUT) return false;
        check(rc);
        return true;
    }

    /// The C handle (NULL when empty); it stays owned by this object.
    shmbus_event* raw() const noexcept { return h_.get(); }
    /// Whether this object holds a handle.
    explicit operator bool() const noexcept { return h_.get() != nullptr; }

private:
    explicit event(shmbus_event* e) noexcept : h_(e) {}
    detail::unique_handle<shmbus_event, &shmbus_event_close> h_;
};

// ---------------------------------------------------------------------------------------
// Duplex
// ---------------------------------------------------------------------------------------

/// One end of a two-way link with requests and replies (shmbus_duplex): a server
/// (listen) and one client at a time (connect). Use it from one thread at a time.
class duplex {
public:
    /// A received message: its bytes and its request id (0 for a plain message).
    struct message {
        std::vector<uint8_t> data;  ///< The payload.
        uint64_t request = 0;       ///< The request id to reply to; 0 for a plain message.
        /// Whether the peer waits for a reply.
        bool is_request() const noexcept { return request != 0; }
    };

    /// An empty duplex object.
    duplex() noexcept = default;
    duplex(const duplex&) = delete;
    duplex& operator=(const duplex&) = delete;
    /// Takes over `o`'s end, leaving it empty.
    duplex(duplex&& o) noexcept = default;
    /// Closes this end, then takes over `o`'s.
    duplex& operator=(duplex&& o) noexcept = default;
    /// Closes this end (the peer sees the end of the stream).
    ~duplex() = default;

    /// Becomes the server of link `name` (creating it).
    static duplex listen(const std::string& name, const options* opts = nullptr) {
        shmbus_duplex* d = nullptr;
        check(shmbus_duplex_listen(name.c_str(), detail::opts_of(opts), &d));
        return duplex(d);
    }
    /// Connects to the server of link `name` (not_found_error if none listens).
    static duplex connect(const std::string& name, const options* opts = nullptr) {
        shmbus_duplex* d = nullptr;
        check(shmbus_duplex_connect(name.c_str(), detail::opts_of(opts), &d));
        return duplex(d);
    }

    /// Sends a plain message (no reply expected).
    void send(const void* data, size_t len) { check(shmbus_duplex_send(h_.get(), data, len)); }
    /// Sends the characters of `s` as a plain message.
    void send(std::string_view s) { send(s.data(), s.size()); }
    /// Sends the bytes of `b` as a plain message.
    void send(bytes_view b) { send(b.data(), b.size()); }

    /// Receives the next message or request, waiting at most `timeout` (timeout_error;
    /// empty_error for a zero timeout; disconnected_error when the peer closed). The buffer
    /// grows to fit.
    message recv(std::chrono::nanoseconds timeout = forever) {
        message m;
        int rc = recv_msg(m, detail::to_ns(timeout));
        if (rc < 0) detail::raise(rc, detail::last_error_message());
        return m;
    }
    /// recv() returning std::nullopt when `timeout` passes (or nothing waits, for zero).
    std::optional<message> recv_for(std::chrono::nanoseconds timeout) {
        message m;
        int rc = recv_msg(m, detail::to_ns(timeout));
        if (rc == SHMBUS_ERR_TIMEOUT || rc == SHMBUS_ERR_EMPTY) return std::nullopt;
        if (rc < 0) detail::raise(rc, detail::last_error_message());
        return m;
    }

    /// Answers request `request` (an id from recv) with `len` bytes at `data`
    /// (wrong_mode_error for id 0: a plain message has nobody waiting).
    void reply(uint64_t request, const void* data, size_t len) {
        check(shmbus_duplex_reply(h_.get(), request, data, len));
    }
    /// Answers request `request` with the bytes of `b`.
    void reply(uint64_t request, bytes_view b) { reply(request, b.data(), b.size()); }
    /// Answers request `request` with the characters of `s`.
    void reply(uint64_t request, std::string_view s) { reply(request, s.data(), s.size()); }
    /// Answers message `to` with the bytes of `b`.
    void reply(const message& to, bytes_view b) { reply(to.request, b); }
    /// Answers message `to` with the characters of `s`.
    void reply(const message& to, std::string_view s) { reply(to.request, s); }

    /// Sends a request and waits at most `timeout` in all for its reply (timeout_error).
    /// Messages that arrive meanwhile are kept for recv(). The buffer grows to fit.
    std::vector<uint8_t> request(bytes_view data, std::chrono::nanoseconds timeout = forever) {
        std::vector<uint8_t> out(hint_);
        size_t len = 0;
        int rc = shmbus_duplex_request(h_.get(), data.data(), data.size(), out.data(), out.size(),
                                       &len, detail::to_ns(timeout));
        while (rc == SHMBUS_ERR_TOO_SMALL && len > out.size()) {
            // The reply is kept: fetch it with a buffer of the size needed.
            hint_ = std::max(hint_, len);
            out.resize(len);
            rc = shmbus_duplex_take_reply(h_.get(), out.data(), out.size(), &len);
        }
        if (rc < 0) detail::raise(rc, detail::last_error_message(), len);
        out.resize(len);
        return out;
    }
    /// request() with the characters of `s`.
    std::vector<uint8_t> request(std::string_view s, std::chrono::nanoseconds timeout = forever) {
        return request(bytes_view(s), timeout);
    }

    /// The C handle (NULL when empty); it stays owned by this object.
    shmbus_duplex* raw() const noexcept { return h_.get(); }
    /// Whether this object holds a handle.
    explicit operator bool() const noexcept { return h_.get() != nullptr; }

private:
    explicit duplex(shmbus_duplex* d) noexcept : h_(d) {}

    /// One receive into `m`, growing its buffer on SHMBUS_ERR_TOO_SMALL; the C status.
    int recv_msg(message& m, int64_t ns) {
        m.data.resize(hint_);
        for (;;) {
            size_t len = 0;
            uint64_t request = 0;
            int rc = shmbus_duplex_recv(h_.get(), m.data.data(), m.data.size(), &len, &request, ns);
            if (rc == SHMBUS_OK) {
                m.data.resize(len);
                m.request = request;
                return rc;
            }
            if (rc == SHMBUS_ERR_TOO_SMALL && len > m.data.size()) {
                // The message is kept for the next call.
                hint_ = std::max(hint_, len);
                m.data.resize(len);
                continue;
            }
            m.data.clear();
            return rc;
        }
    }

    detail::unique_handle<shmbus_duplex, &shmbus_duplex_close> h_;
    size_t hint_ = 256;  ///< Initial receive buffer: the largest message seen so far.
};

// ---------------------------------------------------------------------------------------
// Segment
// ---------------------------------------------------------------------------------------

/// A named block of shared bytes (shmbus_segment), zeroed at creation, read and written at
/// offsets. Threads may share one object.
class segment {
public:
    /// An empty segment object.
    segment() noexcept = default;
    segment(const segment&) = delete;
    segment& operator=(const segment&) = delete;
    /// Takes over `o`'s handle, leaving it empty.
    segment(segment&& o) noexcept = default;
    /// Closes this handle, then takes over `o`'s.
    segment& operator=(segment&& o) noexcept = default;
    /// Closes the handle (the creator's close removes the segment unless persistent).
    ~segment() = default;

    /// Creates segment `name` of `size` bytes (zeroed).
    static segment create(const std::string& name, size_t size, const options* opts = nullptr) {
        shmbus_segment* s = nullptr;
        check(shmbus_segment_create(name.c_str(), size, detail::opts_of(opts), &s));
        return segment(s);
    }
    /// Opens existing segment `name`.
    static segment open(const std::string& name, const options* opts = nullptr) {
        shmbus_segment* s = nullptr;
        check(shmbus_segment_open(name.c_str(), detail::opts_of(opts), &s));
        return segment(s);
    }

    /// The size of the segment's data in bytes (0 when empty).
    size_t size() const noexcept { return shmbus_segment_size(h_.get()); }

    /// Copies `len` bytes at `offset` into `buf` (invalid_error outside the segment).
    void read(size_t offset, void* buf, size_t len) const {
        check(shmbus_segment_read(h_.get(), offset, buf, len));
    }
    /// `len` bytes at `offset`, copied (invalid_error outside the segment).
    std::vector<uint8_t> read(size_t offset, size_t len) const {
        std::vector<uint8_t> v(len);
        read(offset, v.data(), len);
        return v;
    }
    /// Copies `len` bytes at `data` to `offset` (invalid_error outside the segment).
    void write(size_t offset, const void* data, size_t len) {
        check(shmbus_segment_write(h_.get(), offset, data, len));
    }
    /// Copies the bytes of `b` to `offset`.
    void write(size_t offset, bytes_view b) { write(offset, b.data(), b.size()); }
    /// Copies the characters of `s` to `offset`.
    void write(size_t offset, std::string_view s) { write(offset, s.data(), s.size()); }

    /// The C handle (NULL when empty); it stays owned by this object.
    shmbus_segment* raw() const noexcept { return h_.get(); }
    /// Whether this object holds a handle.
    explicit operator bool() const noexcept { return h_.get() != nullptr; }

private:
    explicit segment(shmbus_segment* s) noexcept : h_(s) {}
    detail::unique_handle<shmbus_segment, &shmbus_segment_close> h_;
};

// ---------------------------------------------------------------------------------------
// Wait set
// ---------------------------------------------------------------------------------------

/// One thread waiting on many objects at once, in one system call (shmbus_waitset):
/// subscribers (a message, a loss, the end of the stream, a dead publisher), events (set;
/// an auto-reset one's release is taken for the caller), blackboards and keys of keyed
/// ones (once per new version), timers, and objects yet to appear (once). Each attach
/// returns a key; wait returns the keys of the ready attachments. The objects stay usable
/// as usual (and may be closed: the set keeps what it needs). Use it from one thread at a
/// time.
class waitset {
public:
    /// A new, empty set.
    static waitset create() {
        shmbus_waitset* w = nullptr;
        check(shmbus_waitset_create(&w));
        return waitset(w);
    }
    /// An empty waitset object (no handle).
    waitset() noexcept = default;
    waitset(const waitset&) = delete;
    waitset& operator=(const waitset&) = delete;
    /// Takes over `o`'s handle, leaving it empty.
    waitset(waitset&& o) noexcept = default;
    /// Closes this handle, then takes over `o`'s.
    waitset& operator=(waitset&& o) noexcept = default;
    /// Closes the set (the attached objects stay open).
    ~waitset() = default;

    /// Attaches a subscriber.
    uint64_t attach(const subscriber& s) {
        uint64_t k = 0;
        check(shmbus_waitset_attach_subscriber(h_.get(), s.raw(), &k));
        return k;
    }
    /// Attaches an event.
    uint64_t attach(const event& e) {
        uint64_t k = 0;
        check(shmbus_waitset_attach_event(h_.get(), e.raw(), &k));
        return k;
    }
    /// Attaches a blackboard.
    uint64_t attach(const blackboard& b) {
        uint64_t k = 0;
        check(shmbus_waitset_attach_blackboard(h_.get(), b.raw(), &k));
        return k;
    }
    /// Attaches key `key` of a keyed blackboard (unknown_key_error if it has none such).
    uint64_t attach(const keyed_blackboard& b, const std::string& key) {
        uint64_t k = 0;
        check(shmbus_waitset_attach_keyed_key(h_.get(), b.raw(), key.c_str(), &k));
        return k;
    }
    /// Attaches a timer, ready every `period` (> 0).
    uint64_t attach_timer(std::chrono::nanoseconds period) {
        uint64_t k = 0;
        check(shmbus_waitset_attach_timer(h_.get(), detail::to_ns(period), &k));
        return k;
    }
    /// Attaches the appearance of object `name`: ready once, when it can be opened.
    uint64_t attach_appearance(const std::string& name, const options* opts = nullptr) {
        uint64_t k = 0;
        check(shmbus_waitset_attach_appearance(h_.get(), name.c_str(), detail::opts_of(opts), &k));
        return k;
    }
    /// Detaches `key` (invalid_error if it is not attached).
    void detach(uint64_t key) { check(shmbus_waitset_detach(h_.get(), key)); }

    /// Waits as long as it takes; the ready keys (at least one).
    std::vector<uint64_t> wait() { return wait_ns(-1); }
    /// Waits at most `timeout`; the ready keys (empty when it passes).
    std::vector<uint64_t> wait_for(std::chrono::nanoseconds timeout) {
        return wait_ns(detail::to_ns(timeout));
    }

    /// The C handle (NULL when empty); it stays owned by this object.
    shmbus_waitset* raw() const noexcept { return h_.get(); }
    /// Whether this object holds a handle.
    explicit operator bool() const noexcept { return h_.get() != nullptr; }

private:
    explicit waitset(shmbus_waitset* w) noexcept : h_(w) {}

    std::vector<uint64_t> wait_ns(int64_t ns) {
        std::vector<uint64_t> ready;
        std::array<uint64_t, 64> buf{};
        size_t n = 0;
        int rc = shmbus_waitset_wait(h_.get(), ns, buf.data(), buf.size(), &n);
        if (rc == SHMBUS_ERR_TIMEOUT) return ready;
        check(rc);
        ready.assign(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
        // Keys beyond the buffer were kept by the set: collect them without waiting.
        while (n == buf.size()) {
            rc = shmbus_waitset_wait(h_.get(), 0, buf.data(), buf.size(), &n);
            if (rc == SHMBUS_ERR_TIMEOUT) break;
            check(rc);
            ready.insert(ready.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
        }
        return ready;
    }

    detail::unique_handle<shmbus_waitset, &shmbus_waitset_close> h_;
};

/// Removes object `name` (of any kind) from the namespace; open handles keep working.
inline void remove(const std::string& name, const options* opts = nullptr) {
    check(shmbus_remove(name.c_str(), detail::opts_of(opts)));
}

}  // namespace shmbus

#endif  // SHMBUS_HPP
