// Self-checking test of shmbus.hpp, the C++17 RAII wrapper over shmbus.h.
//
// Build (after `cargo build -p shmbus-ffi`), as one command line:
//   g++ -std=c++17 -Wall -Wextra -Werror -pedantic -g -I crates/shmbus-ffi/include
//       crates/shmbus-ffi/tests/cpp/test_hpp.cpp -o /tmp/test_hpp -L target/debug -lshmbus
//       -Wl,-rpath,$PWD/target/debug -lpthread
// Run: /tmp/test_hpp [namespace]   (default namespace: cpp-test-<pid>)
//
// Single process; every object lives in its own namespace, so parallel runs do not meet.
// Prints each failed check and exits nonzero on failure; prints "ok" when all pass.

#include "shmbus.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;
using shmbus::bytes_view;

namespace {

int failures = 0;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            ++failures;                                                              \
        }                                                                            \
    } while (0)

// Runs `f` and returns the exception of type E it threw, or nullopt (printing what happened
// instead) when it threw nothing or something else.
template <class E, class F>
std::optional<E> catch_as(F&& f, int line) {
    try {
        f();
        std::fprintf(stderr, "line %d: expected an exception, none was thrown\n", line);
    } catch (const E& e) {
        return e;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "line %d: unexpected exception: %s\n", line, e.what());
    } catch (...) {
        std::fprintf(stderr, "line %d: unexpected non-std exception\n", line);
    }
    return std::nullopt;
}
#define CATCH_AS(type, ...) catch_as<type>([&] { __VA_ARGS__; }, __LINE__)

std::string str(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

// Polls `pred` until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 5000ms) {
    auto end = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7 + i / 251);
    return v;
}

// Every wrapper class is move-only with a noexcept move.
template <class T>
constexpr bool move_only_v = !std::is_copy_constructible_v<T> && !std::is_copy_assignable_v<T> &&
                             std::is_nothrow_move_constructible_v<T> &&
                             std::is_nothrow_move_assignable_v<T>;
static_assert(move_only_v<shmbus::options>);
static_assert(move_only_v<shmbus::publisher>);
static_assert(move_only_v<shmbus::subscriber>);
static_assert(move_only_v<shmbus::loan>);
static_assert(move_only_v<shmbus::sample>);
static_assert(move_only_v<shmbus::blackboard>);
static_assert(move_only_v<shmbus::keyed_blackboard>);
static_assert(move_only_v<shmbus::event>);
static_assert(move_only_v<shmbus::duplex>);
static_assert(move_only_v<shmbus::segment>);
static_assert(move_only_v<shmbus::handler>);
static_assert(std::is_base_of_v<std::runtime_error, shmbus::error>);
static_assert(std::is_base_of_v<shmbus::error, shmbus::timeout_error>);
static_assert(std::is_base_of_v<shmbus::error, shmbus::lagged_error>);
static_assert(std::is_base_of_v<shmbus::error, shmbus::unknown_key_error>);

// ---------------------------------------------------------------------------------------

void test_basics() {
    CHECK(!shmbus::version().empty());
    CHECK(shmbus::layout_version() > 0);
    CHECK(shmbus::status_name(SHMBUS_ERR_TIMEOUT) == "SHMBUS_ERR_TIMEOUT");
    CHECK(shmbus::check(SHMBUS_OK) == 0);
    CHECK(shmbus::check(1) == 1);

    auto busy = CATCH_AS(shmbus::busy_error, shmbus::check(SHMBUS_ERR_BUSY));
    CHECK(busy && busy->status() == SHMBUS_ERR_BUSY);
    auto unknown = CATCH_AS(shmbus::error, shmbus::check(-999));
    CHECK(unknown && unknown->status() == -999);

    // Each status maps to its own class.
    CHECK(CATCH_AS(shmbus::timeout_error, shmbus::check(SHMBUS_ERR_TIMEOUT)));
    CHECK(CATCH_AS(shmbus::disconnected_error, shmbus::check(SHMBUS_ERR_DISCONNECTED)));
    CHECK(CATCH_AS(shmbus::publisher_gone_error, shmbus::check(SHMBUS_ERR_PUBLISHER_GONE)));
    CHECK(CATCH_AS(shmbus::not_found_error, shmbus::check(SHMBUS_ERR_NOT_FOUND)));
    CHECK(CATCH_AS(shmbus::permission_error, shmbus::check(SHMBUS_ERR_PERMISSION)));
    CHECK(CATCH_AS(shmbus::too_small_error, shmbus::check(SHMBUS_ERR_TOO_SMALL)));
    CHECK(CATCH_AS(shmbus::lagged_error, shmbus::check(SHMBUS_ERR_LAGGED)));
    CHECK(CATCH_AS(shmbus::unknown_key_error, shmbus::check(SHMBUS_ERR_UNKNOWN_KEY)));
    CHECK(shmbus::status_name(SHMBUS_ERR_UNKNOWN_KEY) == "SHMBUS_ERR_UNKNOWN_KEY");

    // An invalid namespace is refused, with a message.
    auto bad = CATCH_AS(shmbus::invalid_error, shmbus::options().namespace_("not a namespace!"));
    CHECK(bad && bad->status() == SHMBUS_ERR_INVALID && !bad->message().empty());
    CHECK(bad && std::string(bad->what()).find("SHMBUS_ERR_INVALID") == 0);

    // Negative durations on options are refused (they are not timeouts).
    CHECK(CATCH_AS(shmbus::invalid_error, shmbus::options().spin(-1ns)));
}

void test_open_errors(const shmbus::options& opts, const std::string& ns) {
    auto nf = CATCH_AS(shmbus::not_found_error, shmbus::subscriber::open("missing.channel", &opts));
    CHECK(nf && nf->status() == SHMBUS_ERR_NOT_FOUND);
    CHECK(nf && !nf->message().empty());
    // The base class catches it too: same status, same dynamic type.
    bool as_base = false;
    try {
        shmbus::blackboard::open("missing.board", &opts);
    } catch (const shmbus::error& e) {
        as_base = e.status() == SHMBUS_ERR_NOT_FOUND &&
                  dynamic_cast<const shmbus::not_found_error*>(&e) != nullptr;
    }
    CHECK(as_base);
    CHECK(CATCH_AS(shmbus::not_found_error, shmbus::event::open("missing.event", &opts)));
    CHECK(CATCH_AS(shmbus::not_found_error, shmbus::segment::open("missing.segment", &opts)));
    CHECK(CATCH_AS(shmbus::not_found_error, shmbus::duplex::connect("missing.link", &opts)));
    CHECK(CATCH_AS(shmbus::not_found_error, shmbus::publisher::open("missing.channel", &opts)));

    // An existing name cannot be created again.
    auto p = shmbus::publisher::create("dup.channel", shmbus::channel_config(), &opts);
    auto ex = CATCH_AS(shmbus::exists_error,
                       shmbus::publisher::create("dup.channel", shmbus::channel_config(), &opts));
    CHECK(ex && ex->status() == SHMBUS_ERR_EXISTS);

    // Objects of an untrusted owner are refused.
    auto board = shmbus::blackboard::create("owned.board", 16, &opts);
    auto perm_opts = shmbus::options().namespace_(ns).require_owner(static_cast<uint32_t>(getuid()) + 1);
    auto pe = CATCH_AS(shmbus::permission_error, shmbus::blackboard::open("owned.board", &perm_opts));
    CHECK(pe && pe->status() == SHMBUS_ERR_PERMISSION);

    // An invalid name: the library's own message.
    auto in = CATCH_AS(shmbus::invalid_error, shmbus::event::create(".hidden", false, &opts));
    CHECK(in && in->status() == SHMBUS_ERR_INVALID && in->message().find(".hidden") != std::string::npos);

    // A rejected setter leaves the options as they were (the namespace is kept).
    shmbus::options kept;
    kept.namespace_(ns).persistent(false);
    CHECK(CATCH_AS(shmbus::invalid_error, kept.namespace_("bad namespace")));
    CHECK(CATCH_AS(shmbus::invalid_error, kept.namespace_(std::string(33, 'a'))));
    CHECK(CATCH_AS(shmbus::invalid_error, kept.mode(07777)));
    CHECK(CATCH_AS(shmbus::invalid_error, kept.spin(-1ns)));
    CHECK(CATCH_AS(shmbus::invalid_error, kept.open_timeout(-1ms)));
    auto same_board = shmbus::blackboard::open("owned.board", &kept);
    CHECK(same_board.capacity() == 16);
}

void test_lossy_roundtrip(const shmbus::options& opts) {
    auto p = shmbus::publisher::create("rt.lossy", shmbus::channel_config(), &opts);
    auto s = shmbus::subscriber::open("rt.lossy", &opts);
    CHECK(p.subscriber_count() == 1);
    CHECK(p.config().mode() == shmbus::channel_mode::lossy);
    CHECK(s.config().capacity() == p.config().capacity());
    CHECK(s.publisher_alive());

    p.send("hello");                                       // string_view
    p.send(std::vector<uint8_t>{1, 2, 3});                 // bytes_view
    const char raw[4] = {'r', 'a', 'w', '\0'};
    p.send(raw, sizeof raw);                               // pointer and length
    p.send(std::string("string"));                         // std::string, via string_view
    CHECK(p.try_send("try"));                              // lossy: never full
    CHECK(p.send_for("for", 10ms));
    CHECK(p.published() == 6);

    CHECK(str(s.recv()) == "hello");
    CHECK(s.recv() == (std::vector<uint8_t>{1, 2, 3}));
    CHECK(s.recv() == (std::vector<uint8_t>{'r', 'a', 'w', 0}));
    auto m = s.recv_for(1s);
    CHECK(m && str(*m) == "string");
    m = s.try_recv();
    CHECK(m && str(*m) == "try");
    char buf[16];
    size_t n = s.recv_into(buf, sizeof buf, 1s);
    CHECK(std::string(buf, n) == "for");

    // Nothing left: try_recv says so without throwing.
    CHECK(!s.try_recv());
    CHECK(!s.recv_for(10ms));
    CHECK(s.lost() == 0);

    // An empty message is a message.
    p.send(bytes_view());
    auto empty = s.try_recv();
    CHECK(empty && empty->empty());

    // A replaying subscriber starts with the oldest message the ring still holds.
    auto replay = shmbus::subscriber::open("rt.lossy", &opts, true);
    auto first = replay.try_recv();
    CHECK(first && str(*first) == "hello");

    // Zero-copy receive needs back-pressure.
    auto wm = CATCH_AS(shmbus::wrong_mode_error, s.recv_ref(10ms));
    CHECK(wm && wm->status() == SHMBUS_ERR_WRONG_MODE);
}

void test_backpressure(const shmbus::options& opts) {
    auto cfg = shmbus::channel_config::with_capacity(1024).backpressure();
    CHECK(cfg.mode() == shmbus::channel_mode::backpressure);
    auto p = shmbus::publisher::create("rt.bp", cfg, &opts);
    auto s = shmbus::subscriber::open("rt.bp", &opts);
    CHECK(p.config().mode() == shmbus::channel_mode::backpressure);

    // Fill the ring: 16-byte messages take 32 bytes each.
    auto msg = pattern(16, 1);
    int sent = 0;
    while (sent < 1000 && p.try_send(msg)) ++sent;
    CHECK(sent > 0 && sent <= 32);
    CHECK(!p.try_send(msg));
    auto t0 = std::chrono::steady_clock::now();
    CHECK(!p.send_for(msg, 20ms));
    CHECK(std::chrono::steady_clock::now() - t0 >= 15ms);
    // A loan waits for room like a send: full_error without waiting, timeout_error with.
    auto full = CATCH_AS(shmbus::full_error, p.loan(16, 0ns));
    CHECK(full && full->status() == SHMBUS_ERR_FULL);
    auto to = CATCH_AS(shmbus::timeout_error, p.loan(16, 20ms));
    CHECK(to && to->status() == SHMBUS_ERR_TIMEOUT);

    int received = 0;
    while (auto m = s.try_recv()) {
        CHECK(*m == msg);
        ++received;
    }
    CHECK(received == sent);
    CHECK(p.try_send(msg));

    // Zero-copy receive: a sample borrowed in place.
    {
        shmbus::sample smp = s.recv_ref(1s);
        CHECK(smp.valid());
        CHECK(smp.view() == bytes_view(msg));
        CHECK(smp.size() == 16 && smp[0] == msg[0]);
        CHECK(smp.to_vector() == msg);
        shmbus::sample moved = std::move(smp);
        CHECK(!smp.valid() && moved.valid());
        moved.release();
        CHECK(!moved.valid());
    }  // destructors: nothing more to release
    auto rto = CATCH_AS(shmbus::timeout_error, s.recv_ref(20ms));
    CHECK(rto && rto->status() == SHMBUS_ERR_TIMEOUT);
    auto rem = CATCH_AS(shmbus::empty_error, s.recv_ref(0ns));
    CHECK(rem && rem->status() == SHMBUS_ERR_EMPTY);

    // A later receive ends an earlier borrow; its destructor then leaves the new one alone.
    p.send("one");
    p.send("two");
    {
        shmbus::sample a = s.recv_ref(1s);
        CHECK(a.to_string() == "one");
        shmbus::sample b = s.recv_ref(1s);
        CHECK(!a.valid() && b.valid());
        CHECK(b.to_string() == "two");
    }

    // Back-pressure with a blocked sender: every message arrives, in order.
    constexpr int count = 500;
    std::thread sender([&p] {
        for (int i = 0; i < count; ++i) p.send(std::to_string(i));
    });
    bool in_order = true;
    for (int i = 0; i < count; ++i) {
        auto m = s.recv_for(5s);
        if (!m || str(*m) != std::to_string(i)) in_order = false;
    }
    sender.join();
    CHECK(in_order);
    CHECK(s.lost() == 0);
}

void test_loans(const shmbus::options& opts) {
    auto p = shmbus::publisher::create("rt.loan", shmbus::channel_config(), &opts);
    auto s = shmbus::subscriber::open("rt.loan", &opts);

    // Commit.
    {
        shmbus::loan l = p.loan(5);
        CHECK(l.active() && l.size() == 5);
        std::memcpy(l.data(), "hello", 5);
        l.commit();
        CHECK(!l.active());
    }
    CHECK(p.published() == 1);
    auto m = s.try_recv();
    CHECK(m && str(*m) == "hello");

    // Destroyed uncommitted: nothing is published.
    {
        shmbus::loan l = p.loan(7);
        CHECK(l.bytes().copy_from(std::string_view("dropped")) == 7);
    }
    CHECK(p.published() == 1);
    CHECK(!s.try_recv());

    // Explicit discard.
    {
        shmbus::loan l = p.loan(3);
        l.discard();
        CHECK(!l.active());
        auto nl = CATCH_AS(shmbus::no_loan_error, l.commit());
        CHECK(nl && nl->status() == SHMBUS_ERR_NO_LOAN);
    }
    CHECK(p.published() == 1);

    // A send supersedes a loan: the loan cannot be committed any more.
    {
        shmbus::loan l = p.loan(3);
        p.send("x");
        CHECK(!l.active());
        CHECK(CATCH_AS(shmbus::no_loan_error, l.commit()));
    }
    m = s.try_recv();
    CHECK(m && str(*m) == "x");
    CHECK(!s.try_recv());

    // A superseded loan's destructor does not discard the newer loan.
    {
        shmbus::loan old_loan = p.loan(3);
        shmbus::loan newer = p.loan(3);
        newer.bytes().copy_from(std::string_view("new"));
        {
            shmbus::loan gone = std::move(old_loan);  // destroyed here, superseded
        }
        CHECK(newer.active());
        newer.commit();
    }
    m = s.try_recv();
    CHECK(m && str(*m) == "new");

    // Committing twice; moving a loan.
    {
        shmbus::loan a = p.loan(2);
        shmbus::loan b = std::move(a);
        CHECK(!a.active() && b.active());
        b.bytes().copy_from(std::string_view("mv"));
        b.commit();
        CHECK(CATCH_AS(shmbus::no_loan_error, b.commit()));
        CHECK(CATCH_AS(shmbus::no_loan_error, a.commit()));
    }
    m = s.try_recv();
    CHECK(m && str(*m) == "mv");

    // Too large for the channel.
    auto tl = CATCH_AS(shmbus::too_large_error, p.loan(p.config().max_message() + 1));
    CHECK(tl && tl->status() == SHMBUS_ERR_TOO_LARGE);
    CHECK(CATCH_AS(shmbus::too_large_error, p.send(pattern(p.config().max_message() + 1, 0))));
}

void test_large_messages(const shmbus::options& opts) {
    auto p = shmbus::publisher::create("rt.large", shmbus::channel_config(), &opts);
    auto s = shmbus::subscriber::open("rt.large", &opts);
    auto big = pattern(10000, 3);
    p.send(big);

    // Too small a buffer: the size needed is reported and the message stays unread.
    char small[16];
    auto ts = CATCH_AS(shmbus::too_small_error, s.recv_into(small, sizeof small, 1s));
    CHECK(ts && ts->status() == SHMBUS_ERR_TOO_SMALL && ts->needed() == 10000);

    // recv grows its buffer.
    CHECK(s.recv() == big);
    auto bigger = pattern(p.config().max_message(), 9);
    p.send(bigger);
    auto m = s.recv_for(1s);
    CHECK(m && *m == bigger);
    p.send("tiny");
    m = s.try_recv();
    CHECK(m && str(*m) == "tiny");
}

void test_timeouts(const shmbus::options& opts) {
    auto p = shmbus::publisher::create("rt.timeout", shmbus::channel_config(), &opts);
    auto s = shmbus::subscriber::open("rt.timeout", &opts);
    char buf[64];
    auto t0 = std::chrono::steady_clock::now();
    auto to = CATCH_AS(shmbus::timeout_error, s.recv_into(buf, sizeof buf, 30ms));
    auto waited = std::chrono::steady_clock::now() - t0;
    CHECK(to && to->status() == SHMBUS_ERR_TIMEOUT);
    CHECK(waited >= 25ms && waited < 5s);
    auto em = CATCH_AS(shmbus::empty_error, s.recv_into(shmbus::mut_bytes(buf, sizeof buf), 0ns));
    CHECK(em && em->status() == SHMBUS_ERR_EMPTY);
    // The error can be caught as std::exception too.
    bool caught = false;
    try {
        s.recv_into(buf, sizeof buf, 1ms);
    } catch (const std::exception& e) {
        caught = std::string(e.what()).find("SHMBUS_ERR_TIMEOUT") != std::string::npos;
    }
    CHECK(caught);
}

void test_lagged(const shmbus::options& opts) {
    auto cfg = shmbus::channel_config::with_capacity(256);
    CHECK(cfg.capacity() == 256 && cfg.mode() == shmbus::channel_mode::lossy);
    auto p = shmbus::publisher::create("rt.lag", cfg, &opts);
    auto s = shmbus::subscriber::open("rt.lag", &opts);
    constexpr uint64_t total = 100;
    for (uint64_t i = 0; i < total; ++i) p.send(&i, sizeof i);

    auto lag = CATCH_AS(shmbus::lagged_error, s.recv());
    CHECK(lag && lag->status() == SHMBUS_ERR_LAGGED);
    uint64_t lost = lag ? lag->lost() : 0;
    CHECK(lost > 0 && lost < total);
    CHECK(lost == s.lost());

    // The next receive continues with the oldest message kept; nothing else is missing.
    uint64_t received = 0;
    uint64_t expected = lost;
    bool consecutive = true;
    while (auto m = s.try_recv()) {
        uint64_t v = 0;
        if (m->size() == sizeof v) std::memcpy(&v, m->data(), sizeof v);
        if (v != expected) consecutive = false;
        ++expected;
        ++received;
    }
    CHECK(consecutive);
    CHECK(lost + received == total);

    // recv_into reports the lag too, with the count.
    for (uint64_t i = 0; i < total; ++i) p.send(&i, sizeof i);
    uint64_t before = s.lost();
    uint64_t v = 0;
    auto lag2 = CATCH_AS(shmbus::lagged_error, s.recv_into(&v, sizeof v, 1s));
    CHECK(lag2 && lag2->lost() > 0 && lag2->lost() == s.lost() - before);
    // And recv_for as well.
    for (uint64_t i = 0; i < total; ++i) p.send(&i, sizeof i);
    before = s.lost();
    auto lag3 = CATCH_AS(shmbus::lagged_error, s.recv_for(1s));
    CHECK(lag3 && lag3->lost() > 0 && lag3->lost() == s.lost() - before);
}

void test_disconnected(const shmbus::options& opts) {
    auto p = shmbus::publisher::create("rt.disc", shmbus::channel_config(), &opts);
    auto s = shmbus::subscriber::open("rt.disc", &opts);
    p.send("a");
    p.send("b");
    { shmbus::publisher gone = std::move(p); }  // closes the channel
    CHECK(!s.publisher_alive());
    CHECK(str(s.recv()) == "a");
    auto m = s.try_recv();
    CHECK(m && str(*m) == "b");
    auto d = CATCH_AS(shmbus::disconnected_error, s.recv());
    CHECK(d && d->status() == SHMBUS_ERR_DISCONNECTED);
    CHECK(CATCH_AS(shmbus::disconnected_error, s.try_recv()));
    CHECK(CATCH_AS(shmbus::disconnected_error, s.recv_for(10ms)));
}

void test_on_message(const shmbus::options& opts) {
    // Normal delivery, then stop.
    {
        auto p = shmbus::publisher::create("h.msg", shmbus::channel_config(), &opts);
        auto s = shmbus::subscriber::open("h.msg", &opts);
        std::mutex mu;
        std::vector<std::string> got;
        std::thread::id cb_thread;
        shmbus::handler h = std::move(s).on_message([&](bytes_view b, uint64_t lost) {
            std::lock_guard<std::mutex> lock(mu);
            cb_thread = std::this_thread::get_id();
            got.push_back(b.to_string() + (lost ? "+lost" : ""));
        });
        CHECK(!s);  // consumed
        CHECK(h && !h.is_finished());
        for (int i = 0; i < 5; ++i) p.send("m" + std::to_string(i));
        CHECK(wait_until([&] {
            std::lock_guard<std::mutex> lock(mu);
            return got.size() == 5;
        }));
        auto stats = h.stop();
        CHECK(stats.delivered == 5 && stats.skipped == 0);
        CHECK(!h);
        CHECK(got == (std::vector<std::string>{"m0", "m1", "m2", "m3", "m4"}));
        CHECK(cb_thread != std::this_thread::get_id());
        CHECK(h.stop().delivered == 0);  // an empty handler
    }
    // The handler finishes when the stream ends.
    {
        auto p = shmbus::publisher::create("h.end", shmbus::channel_config(), &opts);
        std::atomic<int> calls{0};
        auto h = shmbus::subscriber::open("h.end", &opts).on_message(
            [&](bytes_view, uint64_t) { ++calls; });
        p.send("last");
        { shmbus::publisher gone = std::move(p); }
        CHECK(wait_until([&] { return h.is_finished(); }));
        auto stats = h.stop();
        CHECK(stats.delivered == 1 && calls == 1);
    }
    // An exception thrown by the callback never reaches C: stop() rethrows it.
    {
        auto p = shmbus::publisher::create("h.throw", shmbus::channel_config(), &opts);
        std::atomic<int> calls{0};
        auto h = shmbus::subscriber::open("h.throw", &opts).on_message([&](bytes_view b, uint64_t) {
            if (++calls == 2) throw std::runtime_error("boom: " + b.to_string());
        });
        p.send("one");
        p.send("two");
        p.send("three");
        CHECK(wait_until([&] { return h.failed(); }));
        std::this_thread::sleep_for(50ms);  // "three" is not passed to the failed callback
        CHECK(calls == 2);
        bool rethrown = false;
        try {
            h.stop();
        } catch (const shmbus::error&) {
            rethrown = false;
        } catch (const std::runtime_error& e) {
            rethrown = std::string(e.what()) == "boom: two";
        }
        CHECK(rethrown);
        CHECK(!h);
    }
    // A non-std exception, and a handler destroyed without stop(): nothing escapes.
    {
        auto p = shmbus::publisher::create("h.throw2", shmbus::channel_config(), &opts);
        auto h = shmbus::subscriber::open("h.throw2", &opts).on_message(
            [](bytes_view, uint64_t) { throw 42; });
        p.send("x");
        CHECK(wait_until([&] { return h.failed(); }));
        shmbus::handler moved;
        moved = std::move(h);
        CHECK(!h && moved);
        bool got42 = false;
        try {
            moved.stop();
        } catch (int v) {
            got42 = v == 42;
        }
        CHECK(got42);
        auto h2 = shmbus::subscriber::open("h.throw2", &opts).on_message(
            [](bytes_view, uint64_t) { throw std::logic_error("ignored"); });
        p.send("y");
        CHECK(wait_until([&] { return h2.failed(); }));
    }  // h2's destructor drops the exception
    // An empty callback is refused; the subscriber is left alone then.
    {
        auto p = shmbus::publisher::create("h.empty", shmbus::channel_config(), &opts);
        auto s = shmbus::subscriber::open("h.empty", &opts);
        CHECK(CATCH_AS(shmbus::invalid_error, std::move(s).on_message(nullptr)));
        CHECK(s);
        p.send("still");
        auto m = s.try_recv();
        CHECK(m && str(*m) == "still");
    }
}

void test_blackboard(const shmbus::options& opts) {
    auto b = shmbus::blackboard::create("bb.main", 64, &opts);
    CHECK(b.version() == 0);
    CHECK(b.capacity() == 64);
    auto [v0, d0] = b.read();
    CHECK(v0 == 0 && d0.empty());

    b.write("one");
    auto [v1, d1] = b.read();
    CHECK(v1 == 1 && str(d1) == "one");
    CHECK(!b.wait_newer(1, 20ms));
    CHECK(b.wait_newer(0, 0ns) == std::optional<uint64_t>(1));

    // A second handle sees the same value; another thread's write wakes a waiter.
    auto reader = shmbus::blackboard::open("bb.main", &opts);
    CHECK(str(reader.read().second) == "one");
    std::thread writer([&b] {
        std::this_thread::sleep_for(20ms);
        b.write(std::vector<uint8_t>{'t', 'w', 'o'});
    });
    auto newer = reader.wait_newer(1, 5s);
    writer.join();
    CHECK(newer == std::optional<uint64_t>(2));
    uint64_t ver = 0;
    char buf[64];
    size_t n = reader.read_into(buf, sizeof buf, &ver);
    CHECK(ver == 2 && std::string(buf, n) == "two");

    // Buffer too small, value too large, another capacity.
    auto ts = CATCH_AS(shmbus::too_small_error, reader.read_into(buf, 2));
    CHECK(ts && ts->needed() == 3);
    auto tl = CATCH_AS(shmbus::too_large_error, b.write(pattern(65, 0)));
    CHECK(tl && tl->status() == SHMBUS_ERR_TOO_LARGE);
    auto full = pattern(64, 5);
    b.write(full);
    CHECK(reader.read().second == full);  // grows past the initial buffer as needed
    // An existing board keeps its own capacity.
    {
        auto other = shmbus::blackboard::create_or_open("bb.main", 128, &opts);
        CHECK(other.capacity() == 64);
    }
    auto same = shmbus::blackboard::create_or_open("bb.main", 64, &opts);
    CHECK(same.version() == b.version());

    // on_update from another thread's writes: every value is the one of its version.
    auto ub = shmbus::blackboard::create("bb.updates", 32, &opts);
    struct seen {
        uint64_t version, skipped;
        std::string value;
    };
    std::mutex mu;
    std::vector<seen> updates;
    shmbus::handler h = ub.on_update(
        [&](bytes_view data, uint64_t version, uint64_t skipped) {
            std::lock_guard<std::mutex> lock(mu);
            updates.push_back({version, skipped, data.to_string()});
        },
        ub.version());
    constexpr uint64_t writes = 50;
    std::thread w([&ub] {
        for (uint64_t i = 1; i <= writes; ++i) {
            ub.write("v" + std::to_string(i));
            if (i % 5 == 0) std::this_thread::sleep_for(1ms);
        }
    });
    w.join();
    CHECK(wait_until([&] {
        std::lock_guard<std::mutex> lock(mu);
        return !updates.empty() && updates.back().version == writes;
    }));
    auto stats = h.stop();
    uint64_t skipped = 0, last = 0;
    bool consistent = true;
    for (const auto& u : updates) {
        if (u.value != "v" + std::to_string(u.version)) consistent = false;
        if (u.version != last + u.skipped + 1) consistent = false;
        last = u.version;
        skipped += u.skipped;
    }
    CHECK(consistent);
    CHECK(stats.delivered == updates.size());
    CHECK(stats.skipped == skipped);
    CHECK(stats.delivered + stats.skipped == writes);

    // after_version 0: the current value first.
    std::atomic<uint64_t> first_version{0};
    auto h0 = ub.on_update([&](bytes_view, uint64_t v, uint64_t) { first_version = v; });
    CHECK(wait_until([&] { return first_version.load() == writes; }));
    CHECK(h0.stop().delivered == 1);

    // An exception in on_update's callback is reported by stop() too.
    auto h1 = ub.on_update([](bytes_view, uint64_t, uint64_t) { throw std::runtime_error("bb"); });
    CHECK(wait_until([&] { return h1.failed(); }));
    CHECK(CATCH_AS(std::runtime_error, h1.stop()));
}

void test_keyed_blackboard(const shmbus::options& opts) {
    using keys = std::vector<std::string>;
    auto b = shmbus::keyed_blackboard::create("kb.robot", {"pose", "battery", "mode"}, 32, &opts);
    CHECK(b.keys() == (keys{"pose", "battery", "mode"}));
    CHECK(b.key_count() == 3 && b.capacity() == 32);
    auto [v0, d0] = b.read("pose");
    CHECK(v0 == 0 && d0.empty());
    CHECK(b.version("pose") == 0);

    // Each key its own value and version; another handle sees them.
    b.write("battery", "87%");
    b.write("battery", std::vector<uint8_t>{'8', '6', '%'});
    b.write("pose", bytes_view("x=1", 3));
    auto reader = shmbus::keyed_blackboard::open("kb.robot", &opts);
    CHECK(reader.keys() == b.keys() && reader.capacity() == 32);
    CHECK(reader.read("battery") == std::make_pair(uint64_t{2}, std::vector<uint8_t>{'8', '6', '%'}));
    CHECK(reader.version("pose") == 1 && reader.version("mode") == 0);
    uint64_t ver = 0;
    char buf[32];
    size_t n = reader.read_into("pose", buf, sizeof buf, &ver);
    CHECK(ver == 1 && std::string(buf, n) == "x=1");

    // A key the board lacks, on every call that takes one: unknown_key_error naming it.
    auto uk = CATCH_AS(shmbus::unknown_key_error, reader.read("speed"));
    CHECK(uk && uk->status() == SHMBUS_ERR_UNKNOWN_KEY);
    CHECK(uk && uk->message().find("speed") != std::string::npos);
    CHECK(CATCH_AS(shmbus::unknown_key_error, b.write("speed", "1")));
    CHECK(CATCH_AS(shmbus::unknown_key_error, reader.read_into("speed", buf, sizeof buf)));
    CHECK(CATCH_AS(shmbus::unknown_key_error, reader.version("speed")));
    CHECK(CATCH_AS(shmbus::unknown_key_error, reader.wait_newer("speed", 0, 0ns)));
    CHECK(CATCH_AS(shmbus::unknown_key_error,
                   reader.on_update("speed", [](bytes_view, uint64_t, uint64_t) {})));

    // Buffer too small, value too large.
    auto ts = CATCH_AS(shmbus::too_small_error, reader.read_into("battery", buf, 2));
    CHECK(ts && ts->needed() == 3);
    CHECK(CATCH_AS(shmbus::too_large_error, b.write("mode", pattern(33, 1))));
    auto full = pattern(32, 9);
    b.write("mode", full);
    CHECK(reader.read("mode").second == full);

    // Invalid key sets, a taken name, the wrong kind.
    CHECK(CATCH_AS(shmbus::invalid_error, shmbus::keyed_blackboard::create("kb.dup", {"a", "a"}, 8, &opts)));
    CHECK(CATCH_AS(shmbus::invalid_error, shmbus::keyed_blackboard::create("kb.none", {}, 8, &opts)));
    CHECK(CATCH_AS(shmbus::invalid_error, shmbus::keyed_blackboard::create("kb.empty", {""}, 8, &opts)));
    CHECK(CATCH_AS(shmbus::exists_error, shmbus::keyed_blackboard::create("kb.robot", {"x"}, 8, &opts)));
    CHECK(CATCH_AS(shmbus::not_found_error, shmbus::keyed_blackboard::open("kb.missing", &opts)));
    auto plain = shmbus::blackboard::create("kb.plain", 8, &opts);
    CHECK(CATCH_AS(shmbus::mismatch_error, shmbus::keyed_blackboard::open("kb.plain", &opts)));
    CHECK(CATCH_AS(shmbus::mismatch_error, shmbus::blackboard::open("kb.robot", &opts)));
    // An existing board keeps its own keys and capacity.
    {
        auto other = shmbus::keyed_blackboard::create_or_open("kb.robot", {"other"}, 64, &opts);
        CHECK(other.keys() == b.keys() && other.capacity() == 32);
        CHECK(other.version("battery") == 2);
    }
    auto made = shmbus::keyed_blackboard::create_or_open("kb.made", {"k"}, 8, &opts);
    CHECK(made.keys() == keys{"k"});

    // A waiter on one key: a write of another key does not wake it, one of its key does.
    CHECK(!reader.wait_newer("pose", 1, 20ms));
    std::thread writer([&b] {
        std::this_thread::sleep_for(20ms);
        b.write("battery", "85%");
        b.write("pose", "x=2");
    });
    auto newer = reader.wait_newer("pose", 1, 5s);
    writer.join();
    CHECK(newer == std::optional<uint64_t>(2));
    CHECK(reader.version("battery") == 3);

    // on_update of one key sees that key's versions only, each with its own value.
    std::mutex mu;
    std::vector<std::pair<uint64_t, std::string>> seen;
    shmbus::handler h = reader.on_update(
        "mode",
        [&](bytes_view data, uint64_t version, uint64_t) {
            std::lock_guard<std::mutex> lock(mu);
            seen.emplace_back(version, data.to_string());
        },
        reader.version("mode"));
    uint64_t base = reader.version("mode");
    constexpr uint64_t writes = 20;
    for (uint64_t i = 1; i <= writes; ++i) {
        b.write("pose", "p" + std::to_string(i));
        b.write("mode", "m" + std::to_string(base + i));
    }
    CHECK(wait_until([&] {
        std::lock_guard<std::mutex> lock(mu);
        return !seen.empty() && seen.back().first == base + writes;
    }));
    auto stats = h.stop();
    bool only_mode = true;
    for (const auto& [version, value] : seen) {
        if (value != "m" + std::to_string(version)) only_mode = false;
    }
    CHECK(only_mode);
    CHECK(stats.delivered == seen.size() && stats.delivered + stats.skipped == writes);
    CHECK(CATCH_AS(shmbus::invalid_error, reader.on_update("mode", nullptr)));
}

void test_event(const shmbus::options& opts) {
    // Auto-reset: a set releases one waiter and is taken by it.
    auto e = shmbus::event::create("ev.auto", false, &opts);
    CHECK(!e.is_set());
    CHECK(!e.wait_for(10ms));
    std::atomic<int> result{-1};
    std::thread waiter([&] { result = e.wait_for(5s) ? 1 : 0; });
    std::this_thread::sleep_for(20ms);
    e.set();
    waiter.join();
    CHECK(result == 1);
    CHECK(!e.is_set());
    e.set();
    CHECK(e.is_set());
    CHECK(e.wait_for(0ns));
    CHECK(!e.is_set());

    // Two waiters, one set: exactly one is released.
    std::atomic<int> released{0};
    std::thread a([&] { released += e.wait_for(300ms) ? 1 : 0; });
    std::thread b([&] { released += e.wait_for(300ms) ? 1 : 0; });
    std::this_thread::sleep_for(50ms);
    e.set();
    a.join();
    b.join();
    CHECK(released == 1);

    // wait() without a timeout, through a second handle.
    auto e2 = shmbus::event::open("ev.auto", &opts);
    std::atomic<bool> done{false};
    std::thread w([&] {
        e2.wait();
        done = true;
    });
    std::this_thread::sleep_for(20ms);
    CHECK(!done);
    e.set();
    w.join();
    CHECK(done);

    // Manual reset: stays set and releases every waiter until reset.
    auto m = shmbus::event::create_or_open("ev.manual", true, &opts);
    std::atomic<int> both{0};
    std::thread w1([&] { both += m.wait_for(5s) ? 1 : 0; });
    std::thread w2([&] { both += m.wait_for(5s) ? 1 : 0; });
    std::this_thread::sleep_for(20ms);
    m.set();
    w1.join();
    w2.join();
    CHECK(both == 2);
    CHECK(m.is_set());
    CHECK(m.wait_for(0ns));
    m.wait();
    CHECK(m.is_set());
    m.reset();
    CHECK(!m.is_set());
    CHECK(!m.wait_for(10ms));
    auto mm = CATCH_AS(shmbus::mismatch_error, shmbus::event::create_or_open("ev.manual", false, &opts));
    CHECK(mm && mm->status() == SHMBUS_ERR_MISMATCH);
}

void test_duplex(const shmbus::options& opts) {
    auto server = shmbus::duplex::listen("dx.link", &opts);
    auto client = shmbus::duplex::connect("dx.link", &opts);
    std::string server_error;
    bool plain_ok = false, wrong_mode_ok = false, bye_ok = false;
    std::thread t([&, srv = std::move(server)]() mutable {
        try {
            auto hello = srv.recv(5s);
            plain_ok = !hello.is_request() && str(hello.data) == "hello";
            try {
                srv.reply(hello, "no one waits");
            } catch (const shmbus::wrong_mode_error&) {
                wrong_mode_ok = true;
            }
            auto ping = srv.recv(5s);
            if (!ping.is_request()) server_error += "ping is not a request; ";
            srv.reply(ping, "pong:" + str(ping.data));
            auto big = srv.recv(5s);
            srv.reply(big, bytes_view(pattern(10000, 4)));
            auto ignored = srv.recv(5s);  // never answered: the client times out
            if (str(ignored.data) != "ignore") server_error += "expected ignore; ";
            auto bye = srv.recv_for(5s);
            bye_ok = bye && str(bye->data) == "bye";
        } catch (const std::exception& e) {
            server_error += e.what();
        }
    });
    CHECK(!client.recv_for(10ms));
    CHECK(!client.recv_for(0ns));
    client.send("hello");
    auto pong = client.request("ping", 5s);
    CHECK(str(pong) == "pong:ping");
    auto big = client.request(bytes_view(std::string_view("big")), 5s);  // grows its buffer
    CHECK(big == pattern(10000, 4));
    auto to = CATCH_AS(shmbus::timeout_error, client.request("ignore", 50ms));
    CHECK(to && to->status() == SHMBUS_ERR_TIMEOUT);
    client.send("bye");
    t.join();
    if (!server_error.empty()) std::fprintf(stderr, "server: %s\n", server_error.c_str());
    CHECK(server_error.empty());
    CHECK(plain_ok && wrong_mode_ok && bye_ok);
}

void test_segment(const shmbus::options& opts) {
    auto seg = shmbus::segment::create("seg.main", 4096, &opts);
    CHECK(seg.size() == 4096);
    CHECK(seg.read(0, 16) == std::vector<uint8_t>(16, 0));
    seg.write(100, "hello");
    auto other = shmbus::segment::open("seg.main", &opts);
    CHECK(other.size() == 4096);
    CHECK(str(other.read(100, 5)) == "hello");
    char buf[3];
    other.write(4093, std::string_view("end"));
    seg.read(4093, buf, 3);
    CHECK(std::string(buf, 3) == "end");
    auto oor = CATCH_AS(shmbus::invalid_error, seg.write(4094, "abc"));
    CHECK(oor && oor->status() == SHMBUS_ERR_INVALID);
    CHECK(CATCH_AS(shmbus::invalid_error, seg.read(4096, buf, 1)));
    CHECK(CATCH_AS(shmbus::invalid_error, seg.read(SIZE_MAX, buf, 2)));
    CHECK(CATCH_AS(shmbus::mismatch_error, shmbus::blackboard::open("seg.main", &opts)));
}

void test_moves(const shmbus::options& opts) {
    auto p1 = shmbus::publisher::create("mv.channel", shmbus::channel_config(), &opts);
    auto s1 = shmbus::subscriber::open("mv.channel", &opts);
    shmbus::publisher p2 = std::move(p1);
    CHECK(!p1 && p2);
    p2.send("a");
    shmbus::subscriber s2 = std::move(s1);
    CHECK(str(s2.recv()) == "a");
    // A moved-from object throws invalid_error, and its getters return 0.
    auto inv = CATCH_AS(shmbus::invalid_error, p1.send("x"));
    CHECK(inv && inv->status() == SHMBUS_ERR_INVALID);
    CHECK(CATCH_AS(shmbus::invalid_error, s1.recv()));
    CHECK(CATCH_AS(shmbus::invalid_error, p1.loan(1)));
    CHECK(CATCH_AS(shmbus::invalid_error, s1.recv_ref(0ns)));
    CHECK(p1.published() == 0 && s1.lost() == 0);
    // Move assignment closes what the target held.
    shmbus::publisher p3;
    CHECK(!p3);
    p3 = std::move(p2);
    p3.send("b");
    CHECK(str(s2.recv()) == "b");
    std::vector<shmbus::publisher> pubs;
    pubs.push_back(std::move(p3));
    pubs.reserve(16);  // relocates with the noexcept move
    pubs[0].send("c");
    CHECK(str(s2.recv()) == "c");
    pubs.clear();  // closes the channel
    CHECK(CATCH_AS(shmbus::disconnected_error, s2.recv()));

    auto b1 = shmbus::blackboard::create("mv.board", 8, &opts);
    shmbus::blackboard b2 = std::move(b1);
    b2.write("x");
    CHECK(b1.version() == 0 && b2.version() == 1);
    CHECK(CATCH_AS(shmbus::invalid_error, b1.write("y")));

    auto k1 = shmbus::keyed_blackboard::create("mv.keyed", {"k"}, 8, &opts);
    shmbus::keyed_blackboard k2;
    k2 = std::move(k1);
    k2.write("k", "x");
    CHECK(!k1 && k2 && k2.version("k") == 1);
    CHECK(k1.key_count() == 0 && k1.capacity() == 0 && k1.keys().empty());
    CHECK(CATCH_AS(shmbus::invalid_error, k1.write("k", "y")));
    CHECK(CATCH_AS(shmbus::invalid_error, k1.version("k")));

    auto e1 = shmbus::event::create("mv.event", true, &opts);
    shmbus::event e2;
    e2 = std::move(e1);
    e2.set();
    CHECK(e2.is_set());
    CHECK(CATCH_AS(shmbus::invalid_error, e1.is_set()));

    auto g1 = shmbus::segment::create("mv.segment", 16, &opts);
    shmbus::segment g2(std::move(g1));
    CHECK(g1.size() == 0 && g2.size() == 16);

    auto d1 = shmbus::duplex::listen("mv.link", &opts);
    shmbus::duplex d2 = std::move(d1);
    CHECK(!d1 && d2);
    CHECK(CATCH_AS(shmbus::invalid_error, d1.send("x")));

    // Moved-from options are refused rather than silently replaced by the defaults.
    shmbus::options o1;
    shmbus::options o2 = std::move(o1);
    CHECK(!o1 && o2);
    CHECK(CATCH_AS(shmbus::invalid_error, shmbus::event::create("mv.x", false, &o1)));
    auto fluent = shmbus::options().mode(0600).persistent(false).spin(0ns).open_timeout(1s);
    CHECK(fluent);

    shmbus::handler h1, h2;
    h2 = std::move(h1);
    CHECK(!h1 && !h2 && h2.is_finished());
}

}  // namespace

void test_waitset(const shmbus::options& opts) {
    auto ws = shmbus::waitset::create();
    CHECK(ws.wait_for(0ns).empty());
    auto pub = shmbus::publisher::create("ws.chan", shmbus::channel_config(), &opts);
    auto sub = shmbus::subscriber::open("ws.chan", &opts);
    auto board = shmbus::blackboard::create("ws.board", 16, &opts);
    auto go = shmbus::event::create("ws.go", true, &opts);
    auto k_sub = ws.attach(sub);
    auto k_board = ws.attach(board);
    auto k_go = ws.attach(go);
    auto k_tick = ws.attach_timer(1h);
    auto k_late = ws.attach_appearance("ws.late", &opts);
    CATCH_AS(shmbus::invalid_error, ws.attach_timer(0ns));
    pub.send(std::string_view("m"));
    board.write(std::string_view("v"));
    go.set();
    auto late = shmbus::blackboard::create("ws.late", 8, &opts);
    std::vector<uint64_t> seen;
    for (int i = 0; i < 20 && seen.size() < 4; i++) {
        for (auto k : ws.wait_for(5s)) {
            if (std::find(seen.begin(), seen.end(), k) == seen.end()) seen.push_back(k);
        }
    }
    for (auto k : {k_sub, k_board, k_go, k_late}) {
        CHECK(std::find(seen.begin(), seen.end(), k) != seen.end());
    }
    CHECK(std::find(seen.begin(), seen.end(), k_tick) == seen.end());
    ws.detach(k_go);
    CATCH_AS(shmbus::invalid_error, ws.detach(k_go));
    // More ready keys than one native call returns (64): all come back.
    auto many = shmbus::waitset::create();
    for (int i = 0; i < 100; i++) many.attach(go);
    CHECK(many.wait_for(5s).size() == 100);
}

int main(int argc, char** argv) {
    alarm(120);  // a hang fails the test instead of blocking forever
    std::string ns = argc > 1 ? argv[1] : "cpp-test-" + std::to_string(getpid());
    shmbus::options opts;
    try {
        opts.namespace_(ns);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "cannot use namespace %s: %s\n", ns.c_str(), e.what());
        return 2;
    }

    struct test {
        const char* name;
        std::function<void()> run;
    };
    const test tests[] = {
        {"basics", [] { test_basics(); }},
        {"open_errors", [&] { test_open_errors(opts, ns); }},
        {"lossy_roundtrip", [&] { test_lossy_roundtrip(opts); }},
        {"backpressure", [&] { test_backpressure(opts); }},
        {"loans", [&] { test_loans(opts); }},
        {"large_messages", [&] { test_large_messages(opts); }},
        {"timeouts", [&] { test_timeouts(opts); }},
        {"lagged", [&] { test_lagged(opts); }},
        {"disconnected", [&] { test_disconnected(opts); }},
        {"on_message", [&] { test_on_message(opts); }},
        {"blackboard", [&] { test_blackboard(opts); }},
        {"keyed_blackboard", [&] { test_keyed_blackboard(opts); }},
        {"event", [&] { test_event(opts); }},
        {"duplex", [&] { test_duplex(opts); }},
        {"segment", [&] { test_segment(opts); }},
        {"moves", [&] { test_moves(opts); }},
        {"waitset", [&] { test_waitset(opts); }},
    };
    for (const auto& t : tests) {
        int before = failures;
        try {
            t.run();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "%s: unexpected exception: %s\n", t.name, e.what());
            ++failures;
        } catch (...) {
            std::fprintf(stderr, "%s: unexpected non-std exception\n", t.name);
            ++failures;
        }
        if (failures != before) std::fprintf(stderr, "FAILED: %s\n", t.name);
    }
    if (failures) {
        std::printf("%d check(s) failed\n", failures);
        return 1;
    }
    std::printf("ok\n");
    return 0;
}
