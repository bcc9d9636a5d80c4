// The binding's tests: every class, every error path, and the cross-process scenarios.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading;
using static Shmbus.Tests.Util;

namespace Shmbus.Tests
{
    public static class SharedMemoryTests
    {
        [Test]
        public static void IssueExampleRunsAsWritten()
        {
            var got = new List<string>();
            var seen = new ManualResetEvent(false);
            int handlerThread = -1;
            using (var w = new SharedMemory("plant.temp", 1024)) using (var r = new SharedMemory("plant.temp", 1024))
            {
                r.ReceiveHandler += data =>
                {
                    handlerThread = Thread.CurrentThread.ManagedThreadId;
                    lock (got) got.Add(S(data));
                    seen.Set();
                };
                w.Write(B("21.5"));
                byte[] last = r.Read();
                Assert.Bytes(B("21.5"), last, "Read() gives exactly the bytes written");
                Assert.True(seen.WaitOne(5000), "the handler ran");
            }
            Assert.Equal("21.5", got.Single(), "handler data");
            Assert.True(handlerThread != Thread.CurrentThread.ManagedThreadId, "the handler runs on a background thread");
        }

        [Test]
        public static void ReadGivesExactlyTheBytesWrittenNotTheRegion()
        {
            using (var shm = new SharedMemory("exact", 256))
            {
                Assert.Equal(0, shm.Read().Length, "nothing written yet");
                shm.Write(B("a longer value"));
                shm.Write(B("short"));
                Assert.Bytes(B("short"), shm.Read(), "the last value, its own length");
                Assert.Equal(2L, shm.Version, "two writes");
                Assert.Equal(256, shm.Size, "size");
                var e = Assert.Throws<ShmbusException>(() => shm.Write(new byte[257]), "too large");
                Assert.Equal(Status.TooLarge, e.Status, "status");
            }
        }

        [Test]
        public static void EveryReaderSeesEveryVersionInOrder()
        {
            const int n = 200;
            var lists = new[] { new List<string>(), new List<string>() };
            using (var w = new SharedMemory("order", 64))
            using (var r1 = new SharedMemory("order", 64))
            using (var r2 = new SharedMemory("order", 64))
            {
                var readers = new[] { r1, r2 };
                for (int i = 0; i < 2; i++)
                {
                    var list = lists[i];
                    readers[i].ReceiveHandler += d => { lock (list) list.Add(S(d)); };
                }
                for (int i = 1; i <= n; i++)
                {
                    w.Write(B("v" + i));
                    Thread.Sleep(0);
                }
                WaitUntil(() => lists.All(l => { lock (l) return l.Count > 0 && l.Last() == "v" + n; }), "both readers saw the last value");
                for (int i = 0; i < 2; i++)
                {
                    var nums = lists[i].Select(v => int.Parse(v.Substring(1))).ToList();
                    for (int k = 1; k < nums.Count; k++) Assert.True(nums[k] > nums[k - 1], "versions in order");
                    Assert.Equal((long)n, nums.Count + readers[i].Skipped, "every version seen or counted as skipped");
                }
            }
        }

        [Test]
        public static void StreamReadsWritesAndSeeksAcrossInstances()
        {
            using (var a = new SharedMemory("stream", 64)) using (var b = new SharedMemory("stream", 64))
            {
                var s = a.Stream;
                Assert.True(s.CanRead && s.CanWrite && s.CanSeek, "read, write, seek");
                Assert.Equal(64L, s.Length, "length");
                s.Write(B("hello"), 0, 5);
                s.Seek(10, SeekOrigin.Begin);
                s.Write(B("world"), 0, 5);
                var t = b.Stream;
                var buf = new byte[5];
                t.Seek(10, SeekOrigin.Begin);
                Assert.Equal(5, t.Read(buf, 0, 5), "read count");
                Assert.Bytes(B("world"), buf, "the other instance sees the bytes");
                t.Position = 0;
                t.Read(buf, 0, 5);
                Assert.Bytes(B("hello"), buf, "from the start");
                t.Seek(-2, SeekOrigin.End);
                Assert.Equal(2, t.Read(new byte[5], 0, 5), "short read at the end");
                Assert.Equal(0, t.Read(new byte[5], 0, 5), "nothing past the end");
                Assert.Throws<IOException>(() => t.Write(B("xyz"), 0, 3), "a write past the end");
                Assert.Throws<NotSupportedException>(() => t.SetLength(10), "fixed size");
            }
        }

        [Test]
        public static void DisposeReturnsPromptlyWithAHandlerRunning()
        {
            var shm = new SharedMemory("prompt", 64);
            shm.ReceiveHandler += d => { };
            shm.Write(B("x"));
            Thread.Sleep(20);
            var sw = Stopwatch.StartNew();
            shm.Dispose();
            Assert.True(sw.ElapsedMilliseconds < 500, "Dispose took " + sw.ElapsedMilliseconds + " ms");
        }

        [Test]
        public static void AHandlerNeverDisposedDoesNotKeepTheProcessAlive()
        {
            var child = Child("abandon abandoned");
            Assert.Equal(0, Wait(child, 20, "a child that never disposed its handler"), "exit code: " + child.StandardError.ReadToEnd());
            Assert.Equal("returning", child.StandardOutput.ReadToEnd().Trim(), "it ran");
        }

        [Test]
        public static void DisposeWaitsForTheCallbackInProgress()
        {
            var inside = new ManualResetEvent(false);
            bool finished = false;
            var shm = new SharedMemory("joins", 64);
            shm.ReceiveHandler += d => { inside.Set(); Thread.Sleep(200); finished = true; };
            shm.Write(B("x"));
            Assert.True(inside.WaitOne(5000), "callback started");
            shm.Dispose();
            Assert.True(finished, "Dispose joined the handler thread: the callback had finished");
        }

        [Test]
        public static void HandlerExceptionsAreReportedAndTheHandlerGoesOn()
        {
            var reported = new List<Exception>();
            EventHandler<HandlerFailedEventArgs> onError = (s, e) => { lock (reported) reported.Add(e.Exception); };
            ShmbusHandlers.Unhandled += onError;
            try
            {
                var values = new List<string>();
                using (var shm = new SharedMemory("throws", 64))
                {
                    shm.ReceiveHandler += d =>
                    {
                        string v = S(d);
                        lock (values) values.Add(v);
                        if (v == "bad") throw new InvalidOperationException("boom");
                    };
                    shm.Write(B("bad"));
                    WaitUntil(() => { lock (reported) return reported.Count == 1; }, "the exception reported");
                    shm.Write(B("good"));
                    WaitUntil(() => { lock (values) return values.Contains("good"); }, "the next value delivered");
                }
                Assert.Equal("boom", reported[0].Message, "the callback's exception");
            }
            finally
            {
                ShmbusHandlers.Unhandled -= onError;
            }
        }

        [Test]
        public static void DisposeFromTheHandlersOwnCallbackIsRefused()
        {
            Exception seen = null;
            var done = new ManualResetEvent(false);
            var shm = new SharedMemory("selfdispose", 64);
            shm.ReceiveHandler += d =>
            {
                try { shm.Dispose(); } catch (Exception e) { seen = e; }
                done.Set();
            };
            shm.Write(B("x"));
            Assert.True(done.WaitOne(5000), "callback ran");
            Assert.True(seen is InvalidOperationException, "refused: " + seen);
            shm.Dispose();
        }

        [Test]
        public static void DisposedObjectsThrowObjectDisposed()
        {
            var shm = new SharedMemory("disposed", 64);
            shm.Dispose();
            Assert.Throws<ObjectDisposedException>(() => shm.Write(B("x")), "write after dispose");
            var b = Blackboard.Create("disposed2", 8);
            b.Dispose();
            Assert.Throws<ObjectDisposedException>(() => b.Read(), "read after dispose");
            Assert.Throws<ObjectDisposedException>(() => b.Updated += v => { }, "a handler after dispose");
            b.Dispose(); // twice is harmless
            var p = new Publisher("disposed3");
            var s = new Subscriber("disposed3");
            s.Dispose();
            p.Dispose();
            Assert.Throws<ObjectDisposedException>(() => p.Send(B("x")), "publisher");
            Assert.Throws<ObjectDisposedException>(() => s.Receive(TimeSpan.Zero), "subscriber");
            Assert.Throws<ObjectDisposedException>(() => s.Received += m => { }, "a subscriber's handler");
            var e = NamedEvent.Create("disposed4");
            e.Dispose();
            Assert.Throws<ObjectDisposedException>(() => e.Set(), "event");
            var d = Duplex.Listen("disposed5");
            d.Dispose();
            Assert.Throws<ObjectDisposedException>(() => d.Send(B("x")), "duplex");
            var g = Segment.Create("disposed6", 8);
            g.Dispose();
            Assert.Throws<ObjectDisposedException>(() => g.Write(0, B("x"), 0, 1), "segment");
        }
    }

    public static class ChannelTests
    {
        [Test]
        public static void IssueChannelExampleRunsAsWritten()
        {
            byte[] bytes = B("tick");
            using (var pub = new Publisher("ticks", backpressure: true, capacity: 1 << 20, maxMessage: 4096))
            using (var sub = new Subscriber("ticks"))
            {
                int n = pub.SubscriberCount;
                Assert.Equal(1, n, "subscriber count");
                pub.Send(bytes);
                byte[] m = sub.Receive(TimeSpan.FromSeconds(1));
                Assert.Bytes(bytes, m, "received");
                var e = Assert.Throws<ShmbusTimeoutException>(() => sub.Receive(TimeSpan.FromMilliseconds(10)), "timeout");
                Assert.True(e is ShmbusException && e.Status == Status.Timeout, "a ShmbusException with status Timeout");
                pub.Send(B("a"));
                pub.Send(B("b"));
                pub.Dispose(); // the end of the stream
                var rest = new List<string>();
                foreach (byte[] msg in sub) rest.Add(S(msg));
                Assert.Equal("a,b", string.Join(",", rest), "foreach ends at the end of the stream");
                Assert.True(pub.Name == "ticks" && sub.Name == "ticks", "names");
            }
        }

        [Test]
        public static void ConfigurationIsWhatWasAskedFor()
        {
            using (var pub = new Publisher("cfg", backpressure: true, capacity: 1 << 16, maxMessage: 1000, maxSubscribers: 3))
            using (var sub = new Subscriber("cfg"))
            {
                Assert.True(pub.Backpressure && sub.Backpressure, "mode");
                Assert.Equal(1 << 16, pub.Capacity, "capacity");
                Assert.Equal(1000, pub.MaxMessage, "max message");
                var e = Assert.Throws<ShmbusException>(() => pub.Send(new byte[1001]), "too large");
                Assert.Equal(Status.TooLarge, e.Status, "status");
                using (var s2 = new Subscriber("cfg")) using (var s3 = new Subscriber("cfg"))
                {
                    var full = Assert.Throws<ShmbusException>(() => new Subscriber("cfg"), "a fourth subscriber");
                    Assert.Equal(Status.NoSlot, full.Status, "no slot");
                }
            }
            using (var small = new Publisher("small", capacity: 4096))
                Assert.True(small.MaxMessage <= 2048, "a small ring's largest message fits it");
        }

        [Test]
        public static void TryReceiveTrySendAndLoan()
        {
            using (var pub = new Publisher("try", backpressure: true, capacity: 1024))
            using (var sub = new Subscriber("try"))
            {
                byte[] m;
                Assert.True(!sub.TryReceive(out m), "nothing yet");
                int sent = 0;
                while (pub.TrySend(new byte[100])) sent++;
                Assert.True(sent > 0 && sent < 20, "the ring filled after " + sent);
                Assert.Throws<ShmbusTimeoutException>(() => pub.Send(new byte[100], TimeSpan.FromMilliseconds(10)), "full ring");
                for (int i = 0; i < sent; i++) Assert.True(sub.TryReceive(out m), "message " + i);
                pub.Loan(5, span => { B("loans").AsSpan().CopyTo(span); });
                Assert.Bytes(B("loans"), sub.Receive(TimeSpan.FromSeconds(1)), "loaned message");
                Assert.Throws<InvalidOperationException>(() => pub.Loan(4, span => { throw new InvalidOperationException("no"); }), "fill throws");
                Assert.True(!sub.TryReceive(out m), "a loan whose fill threw published nothing");
                pub.Send(B("after"));
                Assert.Bytes(B("after"), sub.Receive(TimeSpan.FromSeconds(1)), "the channel goes on");
            }
        }

        [Test]
        public static void ReceiveRefReadsInPlace()
        {
            using (var pub = new Publisher("zc", backpressure: true))
            using (var sub = new Subscriber("zc"))
            {
                pub.Send(B("zero-copy"));
                string got = null;
                sub.ReceiveRef(span => { got = S(span.ToArray()); }, TimeSpan.FromSeconds(1));
                Assert.Equal("zero-copy", got, "borrowed bytes");
            }
            using (var lossy = new Publisher("zclossy"))
            using (var sub = new Subscriber("zclossy"))
            {
                lossy.Send(B("x"));
                var e = Assert.Throws<ShmbusException>(() => sub.ReceiveRef(span => { }, TimeSpan.FromSeconds(1)), "lossy");
                Assert.Equal(Status.WrongMode, e.Status, "wrong mode");
            }
        }

        [Test]
        public static void CallbacksCannotPullTheBytesAway()
        {
            using (var pub = new Publisher("busy", backpressure: true))
            using (var sub = new Subscriber("busy"))
            {
                pub.Send(B("one"));
                pub.Send(B("two"));
                sub.ReceiveRef(span =>
                {
                    Assert.Throws<InvalidOperationException>(() => sub.Receive(TimeSpan.Zero), "receive inside a reader");
                    Assert.Throws<InvalidOperationException>(() => sub.Dispose(), "dispose inside a reader");
                    Assert.Equal("one", S(span.ToArray()), "the borrowed bytes are intact");
                }, TimeSpan.FromSeconds(1));
                Assert.Bytes(B("two"), sub.Receive(TimeSpan.FromSeconds(1)), "the next message");
                pub.Loan(3, span =>
                {
                    Assert.Throws<InvalidOperationException>(() => pub.Send(B("x")), "send inside a writer");
                    Assert.Throws<InvalidOperationException>(() => pub.Dispose(), "dispose inside a writer");
                    B("abc").AsSpan().CopyTo(span);
                });
                Assert.Bytes(B("abc"), sub.Receive(TimeSpan.FromSeconds(1)), "the loan was committed");
                // Another thread's Dispose during a reader waits for the reader to return.
                pub.Send(B("held"));
                Thread disposer = null;
                sub.ReceiveRef(span =>
                {
                    disposer = new Thread(() => sub.Dispose());
                    disposer.Start();
                    Thread.Sleep(50);
                    Assert.Equal("held", S(span.ToArray()), "still mapped while the reader runs");
                });
                disposer.Join();
                Assert.Throws<ObjectDisposedException>(() => sub.Receive(TimeSpan.Zero), "disposed afterwards");
            }
        }

        [Test]
        public static void TheEndOfTheStreamIsDisconnected()
        {
            var pub = new Publisher("end");
            using (var sub = new Subscriber("end"))
            {
                pub.Send(B("last"));
                pub.Dispose();
                Assert.Bytes(B("last"), sub.Receive(TimeSpan.FromSeconds(1)), "drained first");
                var e = Assert.Throws<ShmbusDisconnectedException>(() => sub.Receive(TimeSpan.FromSeconds(1)), "then the end");
                Assert.Equal(Status.Disconnected, e.Status, "status");
                byte[] m;
                Assert.Throws<ShmbusDisconnectedException>(() => sub.TryReceive(out m), "TryReceive too");
            }
        }

        [Test]
        public static void APublisherTakesOverAPersistentChannel()
        {
            var opts = new ShmbusOptions { Persistent = true };
            using (var first = new Publisher("takeover", options: opts)) first.Send(B("x"));
            using (var second = Publisher.Open("takeover"))
            using (var sub = new Subscriber("takeover"))
            {
                second.Send(B("from the second"));
                Assert.Bytes(B("from the second"), sub.Receive(TimeSpan.FromSeconds(1)), "the new publisher publishes");
            }
        }

        [Test]
        public static void LossyLossesAreCountedExactly()
        {
            using (var pub = new Publisher("lossy", capacity: 1024))
            using (var sub = new Subscriber("lossy"))
            {
                const int total = 100;
                for (int i = 0; i < total; i++) pub.Send(BitConverter.GetBytes(i));
                pub.Dispose();
                var got = new List<int>();
                foreach (var m in sub) got.Add(BitConverter.ToInt32(m, 0));
                Assert.True(sub.Lost > 0, "the ring overflowed");
                Assert.Equal((long)total, got.Count + sub.Lost, "received + lost = published");
                for (int k = 1; k < got.Count; k++) Assert.True(got[k] > got[k - 1], "in order");
                Assert.Equal(total - 1, got.Last(), "the newest kept");
            }
        }

        [Test]
        public static void ReceivedEventDeliversEveryMessageInOrder()
        {
            using (var pub = new Publisher("events", backpressure: true))
            {
                var sub = new Subscriber("events");
                var got = new List<string>();
                sub.Received += m => { lock (got) got.Add(S(m)); };
                for (int i = 0; i < 100; i++) pub.Send(B("m" + i));
                WaitUntil(() => { lock (got) return got.Count == 100; }, "100 messages");
                Assert.Equal(string.Join(",", Enumerable.Range(0, 100).Select(i => "m" + i)), string.Join(",", got), "in order");
                var beside = Assert.Throws<InvalidOperationException>(() => sub.Receive(TimeSpan.Zero), "receiving beside the event");
                Assert.True(!(beside is ObjectDisposedException), "says why, not 'disposed': " + beside.Message);
                Assert.Throws<InvalidOperationException>(() => { var alive = sub.PublisherAlive; }, "PublisherAlive beside the event");
                var sw = Stopwatch.StartNew();
                sub.Dispose();
                Assert.True(sw.ElapsedMilliseconds < 500, "Dispose took " + sw.ElapsedMilliseconds + " ms");
            }
        }

        [Test]
        public static void WaitForSubscribersAndPublisherAlive()
        {
            using (var pub = new Publisher("wait"))
            {
                Assert.True(!pub.WaitForSubscribers(1, TimeSpan.FromMilliseconds(20)), "nobody yet");
                using (var sub = new Subscriber("wait"))
                {
                    Assert.True(pub.WaitForSubscribers(1, TimeSpan.FromSeconds(1)), "one now");
                    Assert.True(sub.PublisherAlive, "alive");
                    pub.Send(B("x"));
                    Assert.Equal(1L, pub.Published, "published");
                }
            }
        }

        [Test]
        public static void OpensAndConnectsWaitForTheirObjects()
        {
            var waiting = new ShmbusOptions { WaitForCreation = TimeSpan.FromMilliseconds(20) };
            Assert.Throws<ShmbusNotFoundException>(() => Blackboard.Open("late", waiting), "nothing yet");
            Assert.Throws<ShmbusNotFoundException>(() => Duplex.Connect("late.link", TimeSpan.FromMilliseconds(20)), "no server yet");
            var creator = new System.Threading.Thread(() =>
            {
                System.Threading.Thread.Sleep(50);
                using (var board = Blackboard.Create("late", 64))
                using (var server = Duplex.Listen("late.link"))
                {
                    board.Write(B("late value"));
                    var req = server.Receive(TimeSpan.FromSeconds(10));
                    server.Reply(req.RequestId, req.Data);
                    System.Threading.Thread.Sleep(200); // the opener reads the board meanwhile
                }
            });
            creator.Start();
            var forever = new ShmbusOptions { WaitForCreation = System.Threading.Timeout.InfiniteTimeSpan };
            using (var board = Blackboard.Open("late", forever))
            using (var link = Duplex.Connect("late.link", TimeSpan.FromSeconds(10)))
            {
                Assert.Bytes(B("pong"), link.Request(B("pong"), TimeSpan.FromSeconds(10)), "the reply");
                Assert.Bytes(B("late value"), board.Read(), "the board's value");
            }
            creator.Join();
        }

        [Test]
        public static void KilledPublisherIsPublisherGone()
        {
            var child = Child("publisher gone");
            try
            {
                Subscriber sub = null;
                WaitUntil(() =>
                {
                    try { sub = new Subscriber("gone"); return true; }
                    catch (ShmbusNotFoundException) { return false; }
                }, "the child's channel");
                using (sub)
                {
                    Assert.Bytes(B("before the crash"), sub.Receive(TimeSpan.FromSeconds(10)), "first message");
                    KillHard(child);
                    Assert.Throws<ShmbusPublisherGoneException>(() => sub.Receive(TimeSpan.FromSeconds(10)), "after kill -9");
                    Assert.True(!sub.PublisherAlive, "dead");
                }
            }
            finally
            {
                if (!child.HasExited) child.Kill();
            }
        }

        [Test]
        public static void CSharpPublisherToCliSub()
        {
            using (var pub = new Publisher("tocli", backpressure: true))
            {
                var cli = Start(Cli, "sub tocli --count 3");
                Assert.True(pub.WaitForSubscribers(1, TimeSpan.FromSeconds(10)), "the CLI subscribed");
                foreach (var m in new[] { "one", "two", "three" }) pub.Send(B(m));
                string output = cli.StandardOutput.ReadToEnd();
                Assert.Equal(0, Wait(cli, 10, "shmbus sub"), "exit code");
                Assert.Equal("one\ntwo\nthree\n", output, "CLI output");
            }
        }

        [Test]
        public static void CliPubToCSharpSubscriber()
        {
            var cli = Start(Cli, "pub fromcli --backpressure --wait-subscribers 1", stdin: true);
            Subscriber sub = null;
            WaitUntil(() =>
            {
                try { sub = new Subscriber("fromcli"); return true; }
                catch (ShmbusNotFoundException) { return false; }
            }, "the CLI's channel");
            using (sub)
            {
                cli.StandardInput.Write("alpha\nbeta\n");
                cli.StandardInput.Close();
                var got = sub.Select(S).ToList();
                Assert.Equal("alpha,beta", string.Join(",", got), "every line, then the end of the stream");
            }
            Assert.Equal(0, Wait(cli, 10, "shmbus pub"), "exit code");
        }
    }

    public static class ObjectTests
    {
        [Test]
        public static void IssueBlackboardAndEventExamplesRunAsWritten()
        {
            byte[] bytes = B("config v1");
            using (var b = Blackboard.Create("cfg", 256)) using (var rd = Blackboard.Open("cfg")) { b.Write(bytes); byte[] v = rd.Read(); Assert.Bytes(bytes, v, "blackboard"); }
            using (var e = NamedEvent.Create("ready", manualReset: true)) using (var o = NamedEvent.Open("ready")) { e.Set(); bool ok = o.WaitOne(TimeSpan.FromSeconds(1)); Assert.True(ok, "event"); }
        }

        [Test]
        public static void BlackboardVersionsWaitsAndUpdates()
        {
            using (var b = Blackboard.CreateOrOpen("board", 64)) using (var r = Blackboard.CreateOrOpen("board", 64))
            {
                Assert.Equal(0L, r.Version, "new");
                Assert.Equal(null, r.WaitNewer(0, TimeSpan.FromMilliseconds(10)), "nothing newer yet");
                var got = new List<string>();
                r.Updated += v => { lock (got) got.Add(S(v)); };
                Assert.Equal(1L, b.Write(B("one")), "version 1");
                Assert.Equal(1L, r.WaitNewer(0, TimeSpan.FromSeconds(1)), "waited for version 1");
                long version;
                Assert.Bytes(B("one"), r.Read(out version), "value");
                Assert.Equal(1L, version, "its version");
                b.Write(B("two"));
                WaitUntil(() => { lock (got) return got.Count > 0 && got.Last() == "two"; }, "the newest value");
                // A handler slower than the writer gets the newest value and counts the rest.
                Assert.Equal(2L, got.Count + r.Skipped, "delivered + skipped: " + string.Join(",", got));
                Assert.True(got.Count == 1 || string.Join(",", got) == "one,two", "in order");
                Assert.Equal(64, r.Capacity, "capacity");
            }
        }

        [Test]
        public static void EventsManualAndAutoReset()
        {
            using (var m = NamedEvent.Create("manual", manualReset: true)) using (var o = NamedEvent.Open("manual"))
            {
                Assert.True(!o.WaitOne(TimeSpan.FromMilliseconds(10)), "unset");
                m.Set();
                Assert.True(o.WaitOne(TimeSpan.Zero) && o.WaitOne(TimeSpan.Zero) && m.IsSet, "stays set");
                m.Reset();
                Assert.True(!o.IsSet, "reset");
            }
            using (var a = NamedEvent.CreateOrOpen("auto")) using (var o = NamedEvent.Open("auto"))
            {
                a.Set();
                Assert.True(o.WaitOne(TimeSpan.FromSeconds(1)), "one waiter released");
                Assert.True(!o.WaitOne(TimeSpan.FromMilliseconds(10)), "and the event is unset again");
                var waiter = new Thread(() => o.WaitOne());
                waiter.Start();
                Thread.Sleep(20);
                a.Set();
                Assert.True(waiter.Join(5000), "a blocked waiter wakes");
            }
        }

        [Test]
        public static void DuplexRequestReply()
        {
            using (var server = Duplex.Listen("link"))
            {
                var t = new Thread(() =>
                {
                    var req = server.Receive(TimeSpan.FromSeconds(10));
                    server.Reply(req.RequestId, B("re: " + S(req.Data)));
                    var plain = server.Receive(TimeSpan.FromSeconds(10));
                    server.Send(B(S(plain.Data) + " back"));
                    var bigReq = server.Receive(TimeSpan.FromSeconds(10));
                    server.Reply(bigReq.RequestId, bigReq.Data);
                });
                t.Start();
                using (var client = Duplex.Connect("link"))
                {
                    Assert.Equal("re: hi", S(client.Request(B("hi"), TimeSpan.FromSeconds(10))), "reply");
                    client.Send(B("note"));
                    var back = client.Receive(TimeSpan.FromSeconds(10));
                    Assert.Equal("note back", S(back.Data), "plain message");
                    Assert.Equal(0UL, back.RequestId, "no reply wanted");
                    var big = new byte[10000];
                    big[9999] = 7;
                    var echoed = client.Request(big, TimeSpan.FromSeconds(10));
                    Assert.Equal(10000, echoed.Length, "a reply larger than the first buffer");
                    Assert.Equal((byte)7, echoed[9999], "its last byte");
                }
                t.Join();
            }
        }

        [Test]
        public static void SegmentsReadAndWriteBoundsChecked()
        {
            using (var s = Segment.Create("seg", 16)) using (var o = Segment.Open("seg"))
            {
                s.Write(4, B("abcd"), 0, 4);
                var buf = new byte[4];
                o.Read(4, buf, 0, 4);
                Assert.Bytes(B("abcd"), buf, "shared bytes");
                var e = Assert.Throws<ShmbusException>(() => o.Read(14, buf, 0, 4), "past the end");
                Assert.Equal(Status.Invalid, e.Status, "refused by the library");
                Assert.Throws<ArgumentOutOfRangeException>(() => o.Read(0, buf, 2, 4), "outside the buffer");
            }
        }
    }

    public static class KeyedBlackboardTests
    {
        private static readonly string[] Robot = { "pose", "battery", "mode" };

        [Test]
        public static void KeyedCreateOpenAndCreateOrOpen()
        {
            using (var b = KeyedBlackboard.Create("robot", Robot, 32))
            {
                Assert.Equal("robot", b.Name, "name");
                Assert.Equal(32, b.Capacity, "capacity");
                Assert.Equal("pose,battery,mode", string.Join(",", b.Keys), "keys in the order given");
                using (var o = KeyedBlackboard.Open("robot"))
                {
                    Assert.Equal("pose,battery,mode", string.Join(",", o.Keys), "the opener finds the creator's keys");
                    Assert.Equal(32, o.Capacity, "and its capacity");
                }
                // An existing board keeps its own keys and capacity.
                using (var c = KeyedBlackboard.CreateOrOpen("robot", new[] { "x", "y" }, 1000))
                {
                    Assert.Equal("pose,battery,mode", string.Join(",", c.Keys), "create-or-open of an existing board");
                    Assert.Equal(32, c.Capacity, "its own capacity");
                }
                var e = Assert.Throws<ShmbusException>(() => KeyedBlackboard.Create("robot", Robot, 32), "twice");
                Assert.Equal(Status.Exists, e.Status, "exists");
            }
            Assert.Throws<ShmbusNotFoundException>(() => KeyedBlackboard.Open("robot"), "removed with its creator");
            // Order is kept, not sorted; keys are UTF-8 (a 60-byte key is the longest).
            string longest = new string('k', 60);
            var keys = new[] { "b", "a", "température", longest };
            using (var made = KeyedBlackboard.CreateOrOpen("made", keys, 16))
            using (var o = KeyedBlackboard.Open("made"))
            {
                Assert.Equal(string.Join(",", keys), string.Join(",", made.Keys), "created by create-or-open");
                Assert.Equal(string.Join(",", keys), string.Join(",", o.Keys), "opened");
                Assert.Equal(16, o.Capacity, "capacity");
                made.Write("température", B("21.5"));
                Assert.Bytes(B("21.5"), o.Read("température"), "a non-ASCII key");
                made.Write(longest, B("long"));
                Assert.Bytes(B("long"), o.Read(longest), "a 60-byte key");
            }
            using (var p = KeyedBlackboard.Create("optioned", Robot, 8, new ShmbusOptions { Namespace = "cs-keyed-ns" }))
            {
                Assert.Throws<ShmbusNotFoundException>(() => KeyedBlackboard.Open("optioned"), "not in our namespace");
                using (var o = KeyedBlackboard.Open("optioned", new ShmbusOptions { Namespace = "cs-keyed-ns" }))
                    Assert.Equal(3, o.Keys.Count, "options reach the open");
            }
        }

        [Test]
        public static void KeyedWriteAndReadPerKeyWithIndependentVersions()
        {
            using (var w = KeyedBlackboard.Create("robot", Robot, 32)) using (var r = KeyedBlackboard.Open("robot"))
            {
                long version;
                Assert.Equal(0, r.Read("pose", out version).Length, "nothing written yet");
                Assert.Equal(0L, version, "version 0 before the first write");
                Assert.Equal(1L, w.Write("pose", B("a longer value")), "pose version 1");
                Assert.Equal(2L, w.Write("pose", B("x=1")), "pose version 2");
                Assert.Equal(1L, w.Write("battery", new ReadOnlySpan<byte>(B("87%"))), "battery version 1 (span)");
                Assert.Bytes(B("x=1"), r.Read("pose", out version), "pose: the last value, its own length");
                Assert.Equal(2L, version, "pose's version");
                Assert.Bytes(B("87%"), r.Read("battery"), "battery");
                Assert.Equal(2L, r.Version("pose"), "pose");
                Assert.Equal(1L, r.Version("battery"), "battery");
                Assert.Equal(0L, r.Version("mode"), "mode: never written");
                Assert.Equal(0, r.Read("mode").Length, "mode: empty");
                Assert.Equal(1L, w.Write("mode", new byte[0]), "an empty value is a write");
                Assert.Equal(0, r.Read("mode").Length, "still empty");
                Assert.Equal(1L, r.Version("mode"), "but version 1");
                w.Write("mode", new byte[32]);
                Assert.Equal(32, r.Read("mode").Length, "a value of the whole capacity");
            }
        }

        [Test]
        public static void KeyedWaitNewerIsPerKey()
        {
            using (var w = KeyedBlackboard.Create("robot", Robot, 32)) using (var r = KeyedBlackboard.Open("robot"))
            {
                Assert.Equal(null, r.WaitNewer("battery", 0, TimeSpan.Zero), "nothing newer, no wait");
                var sw = Stopwatch.StartNew();
                Assert.Equal(null, r.WaitNewer("battery", 0, TimeSpan.FromMilliseconds(50)), "nothing newer yet");
                Assert.True(sw.ElapsedMilliseconds >= 40, "the timeout was waited: " + sw.ElapsedMilliseconds + " ms");
                long? got = -1;
                var waiter = new Thread(() => got = r.WaitNewer("battery", 0, TimeSpan.FromSeconds(10)));
                waiter.Start();
                Thread.Sleep(50);
                for (int i = 0; i < 5; i++) w.Write("pose", B("p" + i));
                Assert.True(!waiter.Join(200), "writes of another key do not end the wait");
                w.Write("battery", B("87%"));
                Assert.True(waiter.Join(5000), "a write of the key ends it");
                Assert.Equal((long?)1, got, "battery's new version");
                Assert.Equal((long?)5, r.WaitNewer("pose", 0, TimeSpan.FromSeconds(1)), "pose's version, at once");
                Assert.Equal(null, r.WaitNewer("pose", 5, TimeSpan.FromMilliseconds(10)), "nothing newer than 5");
                Assert.Throws<ArgumentOutOfRangeException>(() => r.WaitNewer("pose", 5, TimeSpan.FromSeconds(-2)), "negative timeout");
            }
        }

        [Test]
        public static void KeyedOnUpdateGetsOnlyItsKeysValues()
        {
            const int n = 100;
            var poses = new List<string>();
            var batteries = new List<string>();
            int handlerThread = -1;
            using (var w = KeyedBlackboard.Create("robot", Robot, 32)) using (var r = KeyedBlackboard.Open("robot"))
            {
                w.Write("pose", B("before"));
                var ps = r.OnUpdate("pose", v => { handlerThread = Thread.CurrentThread.ManagedThreadId; lock (poses) poses.Add(S(v)); });
                var bs = r.OnUpdate("battery", v => { lock (batteries) batteries.Add(S(v)); });
                Assert.Equal("pose", ps.Key, "the subscription's key");
                for (int i = 1; i <= n; i++)
                {
                    w.Write("pose", B("p" + i));
                    if (i % 10 == 0) w.Write("battery", B("b" + i));
                    w.Write("mode", B("m" + i));
                    Thread.Sleep(0);
                }
                WaitUntil(() => { lock (poses) return poses.Count > 0 && poses.Last() == "p" + n; }, "the last pose");
                WaitUntil(() => { lock (batteries) return batteries.Count > 0 && batteries.Last() == "b" + n; }, "the last battery");
                lock (poses)
                {
                    Assert.True(poses.All(v => v.StartsWith("p")), "only pose values (not the value before the subscription): " + string.Join(",", poses));
                    var nums = poses.Select(v => int.Parse(v.Substring(1))).ToList();
                    for (int k = 1; k < nums.Count; k++) Assert.True(nums[k] > nums[k - 1], "in order");
                    Assert.Equal((long)n, poses.Count + ps.Skipped, "every pose version delivered or counted as skipped");
                }
                lock (batteries)
                {
                    Assert.True(batteries.All(v => v.StartsWith("b")), "only battery values: " + string.Join(",", batteries));
                    Assert.Equal((long)(n / 10), batteries.Count + bs.Skipped, "every battery version delivered or skipped");
                }
                Assert.True(handlerThread != Thread.CurrentThread.ManagedThreadId, "the handler runs on a background thread");
                // Disposing a subscription stops its handler; the others go on.
                ps.Dispose();
                ps.Dispose(); // twice is harmless
                int delivered;
                lock (poses) delivered = poses.Count;
                w.Write("pose", B("after"));
                w.Write("battery", B("b-after"));
                WaitUntil(() => { lock (batteries) return batteries.Last() == "b-after"; }, "battery still delivered");
                Thread.Sleep(20);
                lock (poses) Assert.Equal(delivered, poses.Count, "nothing delivered after its Dispose");
                // A handler's exception is reported, and the handler goes on.
                var reported = new List<Exception>();
                EventHandler<HandlerFailedEventArgs> onError = (s, e) => { lock (reported) reported.Add(e.Exception); };
                ShmbusHandlers.Unhandled += onError;
                try
                {
                    var modes = new List<string>();
                    using (r.OnUpdate("mode", v => { lock (modes) modes.Add(S(v)); if (S(v) == "bad") throw new InvalidOperationException("boom"); }))
                    {
                        w.Write("mode", B("bad"));
                        WaitUntil(() => { lock (reported) return reported.Count == 1; }, "the exception reported");
                        w.Write("mode", B("good"));
                        WaitUntil(() => { lock (modes) return modes.Contains("good"); }, "the next value delivered");
                    }
                    Assert.Equal("boom", reported[0].Message, "the callback's exception");
                }
                finally
                {
                    ShmbusHandlers.Unhandled -= onError;
                }
            }
        }

        [Test]
        public static void KeyedUnknownKeysAndTooLargeValues()
        {
            using (var b = KeyedBlackboard.Create("robot", Robot, 8))
            {
                var actions = new Dictionary<string, Action>
                {
                    { "write", () => b.Write("speed", B("1")) },
                    { "write a span", () => b.Write("speed", new ReadOnlySpan<byte>(B("1"))) },
                    { "read", () => b.Read("speed") },
                    { "version", () => b.Version("speed") },
                    { "wait", () => b.WaitNewer("speed", 0, TimeSpan.FromSeconds(5)) },
                    { "on update", () => b.OnUpdate("speed", v => { }) },
                };
                foreach (var a in actions)
                {
                    var e = Assert.Throws<ShmbusUnknownKeyException>(a.Value, a.Key + " of an unknown key");
                    Assert.Equal("speed", e.Key, a.Key + ": the key");
                    Assert.Equal(Status.UnknownKey, e.Status, a.Key + ": status");
                    Assert.True(e.Message.Contains("speed") && e.Message.Contains("robot"), a.Key + ": the message names the key and board: " + e.Message);
                    Assert.True(e is ShmbusException, "a ShmbusException");
                }
                // Keys are exact: case, and what C would cut at a NUL.
                Assert.Equal("Pose", Assert.Throws<ShmbusUnknownKeyException>(() => b.Read("Pose"), "case").Key, "case");
                var nul = Assert.Throws<ShmbusUnknownKeyException>(() => b.Write("pose\0x", B("1")), "a key with a NUL");
                Assert.Equal("pose\0x", nul.Key, "the key as given");
                Assert.Equal(0L, b.Version("pose"), "pose was not written");
                Assert.Equal("\ud800", Assert.Throws<ShmbusUnknownKeyException>(() => b.Read("\ud800"), "a lone surrogate").Key, "lone surrogate");
                Assert.Equal("", Assert.Throws<ShmbusUnknownKeyException>(() => b.Read(""), "the empty key").Key, "empty key");
                var big = Assert.Throws<ShmbusException>(() => b.Write("pose", new byte[9]), "too large");
                Assert.Equal(Status.TooLarge, big.Status, "status");
                Assert.Equal(0L, b.Version("pose"), "nothing written");
                b.Write("pose", new byte[8]);
                Assert.Throws<ArgumentNullException>(() => b.Write(null, B("x")), "null key");
                Assert.Throws<ArgumentNullException>(() => b.Read(null), "null key");
                Assert.Throws<ArgumentNullException>(() => b.Write("pose", (byte[])null), "null data");
                Assert.Throws<ArgumentNullException>(() => b.OnUpdate("pose", null), "null handler");
            }
        }

        [Test]
        public static void KeyedInvalidKeySetsAndWrongObjects()
        {
            var invalid = new Dictionary<string, string[]>
            {
                { "no keys", new string[0] },
                { "a duplicate", new[] { "pose", "battery", "pose" } },
                { "a 61-byte key", new[] { "pose", new string('k', 61) } },
                { "a 61-byte key of 2-byte characters", new[] { "é" + new string('k', 59) } },
                { "an empty key", new[] { "pose", "" } },
                { "a control character", new[] { "po\nse" } },
                { "a NUL", new[] { "po\0se" } },
                { "a lone surrogate", new[] { "po\udc00se" } },
                { "a null key", new[] { "pose", null } },
                { "4097 keys", Enumerable.Range(0, 4097).Select(i => "k" + i).ToArray() },
            };
            foreach (var set in invalid)
            {
                var e = Assert.Throws<ShmbusException>(() => KeyedBlackboard.Create("bad", set.Value, 8), set.Key);
                Assert.Equal(Status.Invalid, e.Status, set.Key + ": status (" + e.Message + ")");
                Assert.True(e.Message.Length > 0, set.Key + ": a message");
                var c = Assert.Throws<ShmbusException>(() => KeyedBlackboard.CreateOrOpen("bad", set.Value, 8), set.Key + " (create-or-open)");
                Assert.Equal(Status.Invalid, c.Status, set.Key + ": create-or-open status");
            }
            Assert.Throws<ShmbusNotFoundException>(() => KeyedBlackboard.Open("bad"), "nothing was created");
            using (KeyedBlackboard.Create("good", Enumerable.Range(0, 4096).Select(i => "k" + i), 8))
            {
                // An existing board: the keys must still make a valid set.
                var e = Assert.Throws<ShmbusException>(() => KeyedBlackboard.CreateOrOpen("good", new[] { "a", "a" }, 8), "invalid keys for an existing board");
                Assert.Equal(Status.Invalid, e.Status, "status");
                using (var o = KeyedBlackboard.Open("good")) Assert.Equal(4096, o.Keys.Count, "4096 keys");
            }
            Assert.Throws<ArgumentNullException>(() => KeyedBlackboard.Create("bad", null, 8), "null keys");
            Assert.Throws<ArgumentOutOfRangeException>(() => KeyedBlackboard.Create("bad", Robot, -1), "negative capacity");
            var name = Assert.Throws<ShmbusException>(() => KeyedBlackboard.Create("../etc/passwd", Robot, 8), "bad name");
            Assert.Equal(Status.Invalid, name.Status, "invalid name");

            var missing = Assert.Throws<ShmbusNotFoundException>(() => KeyedBlackboard.Open("no.such.keyed"), "not found");
            Assert.True(missing.Message.Contains("no.such.keyed"), "the message names it: " + missing.Message);
            Assert.Equal(Status.NotFound, missing.Status, "status");
            using (Blackboard.Create("plain", 8))
            {
                var m = Assert.Throws<ShmbusException>(() => KeyedBlackboard.Open("plain"), "a plain blackboard opened as keyed");
                Assert.Equal(Status.Mismatch, m.Status, "mismatch: " + m.Message);
                var c = Assert.Throws<ShmbusException>(() => KeyedBlackboard.CreateOrOpen("plain", Robot, 8), "create-or-open of a plain blackboard");
                Assert.Equal(Status.Mismatch, c.Status, "mismatch");
                var x = Assert.Throws<ShmbusException>(() => KeyedBlackboard.Create("plain", Robot, 8), "create over a plain blackboard");
                Assert.Equal(Status.Exists, x.Status, "exists");
            }
            using (KeyedBlackboard.Create("keyed", Robot, 8))
            {
                var m = Assert.Throws<ShmbusException>(() => Blackboard.Open("keyed"), "a keyed blackboard opened as plain");
                Assert.Equal(Status.Mismatch, m.Status, "mismatch");
                var s = Assert.Throws<ShmbusException>(() => new Subscriber("keyed"), "a keyed blackboard as a channel");
                Assert.Equal(Status.Mismatch, s.Status, "wrong kind");
            }
            using (var p = new Publisher("channel"))
            {
                var m = Assert.Throws<ShmbusException>(() => KeyedBlackboard.Open("channel"), "a channel opened as a keyed blackboard");
                Assert.Equal(Status.Mismatch, m.Status, "mismatch");
            }
        }

        [Test]
        public static void KeyedDisposeRules()
        {
            var b = KeyedBlackboard.Create("robot", Robot, 8);
            b.Dispose();
            Assert.Throws<ObjectDisposedException>(() => b.Write("pose", B("x")), "write after dispose");
            Assert.Throws<ObjectDisposedException>(() => b.Write("pose", new ReadOnlySpan<byte>(B("x"))), "span write after dispose");
            Assert.Throws<ObjectDisposedException>(() => b.Read("pose"), "read after dispose");
            Assert.Throws<ObjectDisposedException>(() => b.Version("pose"), "version after dispose");
            Assert.Throws<ObjectDisposedException>(() => b.WaitNewer("pose", 0, TimeSpan.Zero), "wait after dispose");
            Assert.Throws<ObjectDisposedException>(() => b.OnUpdate("pose", v => { }), "a handler after dispose");
            Assert.Throws<ObjectDisposedException>(() => b.Read("speed"), "disposed comes before unknown key");
            Assert.Equal("robot", b.Name, "the name stays");
            Assert.Equal(3, b.Keys.Count, "the keys stay");
            b.Dispose(); // twice is harmless
            Assert.Throws<ShmbusNotFoundException>(() => KeyedBlackboard.Open("robot"), "the creator's Dispose removed it");

            // Dispose returns promptly with handlers running, and waits for a callback in progress.
            var inside = new ManualResetEvent(false);
            bool finished = false;
            using (var w = KeyedBlackboard.Create("joins", Robot, 8))
            {
                var r = KeyedBlackboard.Open("joins");
                var idle = r.OnUpdate("pose", v => { });
                r.OnUpdate("battery", v => { inside.Set(); Thread.Sleep(200); finished = true; });
                w.Write("battery", B("x"));
                Assert.True(inside.WaitOne(5000), "callback started");
                r.Dispose();
                Assert.True(finished, "Dispose joined the handler thread: the callback had finished");
                idle.Dispose(); // after the board's Dispose: harmless
                var sw = Stopwatch.StartNew();
                var r2 = KeyedBlackboard.Open("joins");
                r2.OnUpdate("pose", v => { });
                r2.OnUpdate("mode", v => { });
                w.Write("pose", B("x"));
                Thread.Sleep(20);
                sw.Restart();
                r2.Dispose();
                Assert.True(sw.ElapsedMilliseconds < 500, "Dispose took " + sw.ElapsedMilliseconds + " ms");
                Assert.Bytes(B("x"), w.Read("pose"), "the writer's board goes on");
            }

            // Dispose (of the board or the subscription) from a handler's own callback is refused.
            using (var w = KeyedBlackboard.Create("self", Robot, 8))
            {
                var r = KeyedBlackboard.Open("self");
                Exception fromBoard = null, fromSubscription = null;
                var done = new ManualResetEvent(false);
                bool otherStillRuns = false;
                var other = new ManualResetEvent(false);
                r.OnUpdate("battery", v => { other.Set(); });
                KeyedBlackboard.Subscription s = null;
                var ready = new ManualResetEvent(false);
                s = r.OnUpdate("pose", v =>
                {
                    ready.WaitOne();
                    try { r.Dispose(); } catch (Exception e) { fromBoard = e; }
                    try { s.Dispose(); } catch (Exception e) { fromSubscription = e; }
                    done.Set();
                });
                ready.Set();
                w.Write("pose", B("x"));
                Assert.True(done.WaitOne(5000), "callback ran");
                Assert.True(fromBoard is InvalidOperationException, "the board's Dispose refused: " + fromBoard);
                Assert.True(fromSubscription is InvalidOperationException, "the subscription's Dispose refused: " + fromSubscription);
                // Nothing changed: the board works, its other handler too.
                Assert.Bytes(B("x"), r.Read("pose"), "the board still works");
                w.Write("battery", B("y"));
                otherStillRuns = other.WaitOne(5000);
                Assert.True(otherStillRuns, "the other handler still runs");
                r.Dispose();
                Assert.Throws<ObjectDisposedException>(() => r.Read("pose"), "then disposed from outside");
            }
        }

        [Test]
        public static void KeyedNoHandleLeaks()
        {
            KeyedCycle(100);
            int fds = OpenFds(), maps = ShmbusMappings();
            KeyedCycle(2000);
            Assert.True(OpenFds() <= fds, "open file descriptors: " + fds + " before, " + OpenFds() + " after");
            Assert.Equal(maps, ShmbusMappings(), "shmbus mappings");
        }

        private static void KeyedCycle(int n)
        {
            for (int i = 0; i < n; i++)
            {
                using (var b = KeyedBlackboard.Create("cyclekeyed", Robot, 64))
                using (var o = KeyedBlackboard.Open("cyclekeyed"))
                {
                    b.Write("pose", B("x"));
                    o.Read("pose");
                    if (i % 100 == 0) using (o.OnUpdate("pose", v => { })) b.Write("pose", B("y"));
                }
                if (i % 100 == 0) Assert.Throws<ShmbusNotFoundException>(() => KeyedBlackboard.Open("cyclekeyed"), "removed by Dispose");
            }
        }

        [Test]
        public static void KeyedAcrossProcessesWithTheCli()
        {
            using (var b = KeyedBlackboard.Create("robot", Robot, 64))
            {
                // The CLI writes a key, C# reads it.
                var w = Start(Cli, "board write robot --key battery 87%");
                Assert.Equal(0, Wait(w, 10, "shmbus board write --key"), "exit code: " + w.StandardError.ReadToEnd());
                long version;
                Assert.Bytes(B("87%"), b.Read("battery", out version), "the CLI's value");
                Assert.Equal(1L, version, "battery's version");
                Assert.Equal(0L, b.Version("pose"), "no other key written");
                // C# writes a key, the CLI reads it.
                b.Write("pose", B("x=1 y=2"));
                var r = Start(Cli, "board read robot --key pose");
                string output = r.StandardOutput.ReadToEnd();
                Assert.Equal(0, Wait(r, 10, "shmbus board read --key"), "exit code: " + r.StandardError.ReadToEnd());
                Assert.Equal("x=1 y=2", output, "the CLI printed exactly the value");
                // A key the board lacks fails in the CLI as it does here.
                var u = Start(Cli, "board read robot --key speed");
                string err = u.StandardError.ReadToEnd();
                Assert.True(Wait(u, 10, "shmbus board read --key speed") != 0, "an unknown key fails");
                Assert.True(err.Contains("speed"), "and names it: " + err);
            }
            // A board the CLI created: C# finds its keys.
            var c = Start(Cli, "board write clikeyed --keys pose,battery --capacity 128 --key pose hello");
            Assert.Equal(0, Wait(c, 10, "shmbus board write --keys"), "exit code: " + c.StandardError.ReadToEnd());
            using (var o = KeyedBlackboard.Open("clikeyed"))
            {
                Assert.Equal("pose,battery", string.Join(",", o.Keys), "the CLI's keys");
                Assert.Equal(128, o.Capacity, "the CLI's capacity");
                Assert.Bytes(B("hello"), o.Read("pose"), "the CLI's value");
            }
        }
    }

    public static class ErrorTests
    {
        [DllImport("shmbus")] private static extern IntPtr shmbus_status_name(int status);

        private static string StatusName(int status)
        {
            return Marshal.PtrToStringAnsi(shmbus_status_name(status));
        }

        [Test]
        public static void StatusIsTheLibrarysListOfStatuses()
        {
            // Each member is the library's status of the same name (UnknownKey is
            // SHMBUS_ERR_UNKNOWN_KEY), and the library has no status the enum lacks.
            var values = (Status[])Enum.GetValues(typeof(Status));
            foreach (var status in values)
            {
                string name = status.ToString();
                string snake = string.Concat(name.Select((c, i) => i > 0 && char.IsUpper(c) ? "_" + c : c.ToString())).ToUpperInvariant();
                string want = status == Status.Ok ? "SHMBUS_OK" : "SHMBUS_ERR_" + snake;
                Assert.Equal(want, StatusName((int)status), "the library's name of " + name + " (" + (int)status + ")");
            }
            int lowest = values.Min(v => (int)v);
            Assert.Equal(values.Length, 1 - lowest, "one member for each code from 0 down to " + lowest);
            Assert.Equal("SHMBUS_ERR_UNKNOWN", StatusName(lowest - 1), "no status below " + lowest);
        }

        [Test]
        public static void OpeningAMissingObjectNamesIt()
        {
            var e = Assert.Throws<ShmbusNotFoundException>(() => Blackboard.Open("no.such.board"), "blackboard");
            Assert.True(e.Message.Contains("no.such.board"), "the message names it: " + e.Message);
            Assert.Equal(Status.NotFound, e.Status, "status");
            Assert.Throws<ShmbusNotFoundException>(() => new Subscriber("no.such.channel"), "subscriber");
            Assert.Throws<ShmbusNotFoundException>(() => NamedEvent.Open("no.such.event"), "event");
            Assert.Throws<ShmbusNotFoundException>(() => Duplex.Connect("no.such.link"), "duplex");
            Assert.Throws<ShmbusNotFoundException>(() => Segment.Open("no.such.segment"), "segment");
            Assert.Throws<ShmbusNotFoundException>(() => Publisher.Open("no.such.channel"), "publisher");
        }

        [Test]
        public static void NamesTakenAndInvalid()
        {
            using (var b = Blackboard.Create("taken", 8))
            {
                var e = Assert.Throws<ShmbusException>(() => Blackboard.Create("taken", 8), "twice");
                Assert.Equal(Status.Exists, e.Status, "exists");
                var k = Assert.Throws<ShmbusException>(() => new Subscriber("taken"), "a blackboard as a channel");
                Assert.Equal(Status.Mismatch, k.Status, "wrong kind");
            }
            var bad = Assert.Throws<ShmbusException>(() => Blackboard.Create("../etc/passwd", 8), "bad name");
            Assert.Equal(Status.Invalid, bad.Status, "invalid name");
            Assert.True(bad.Message.Length > 0, "a message");
            using (var pub = new Publisher("negative"))
            using (var sub = new Subscriber("negative"))
                Assert.Throws<ArgumentOutOfRangeException>(() => sub.Receive(TimeSpan.FromSeconds(-2)), "negative timeout");
        }

        [Test]
        public static void AnotherUsersObjectIsRefusedUnlessAllowed()
        {
            if (Environment.UserName != "root") { Console.WriteLine("  (skipped: needs root)"); return; }
            var ns = Environment.GetEnvironmentVariable("SHMBUS_NAMESPACE");
            var p = Start("setpriv", "--reuid 65534 --regid 65534 --clear-groups " + Cli + " --namespace " + ns + " board write --mode 644 theirs hello");
            Assert.Equal(0, Wait(p, 10, "setpriv shmbus board write"), "created as uid 65534: " + p.StandardError.ReadToEnd());
            try
            {
                var e = Assert.Throws<ShmbusPermissionException>(() => Blackboard.Open("theirs"), "untrusted owner");
                Assert.Equal(Status.Permission, e.Status, "status");
                var opts = new ShmbusOptions();
                opts.AllowOwner.Add(65534);
                using (var b = Blackboard.Open("theirs", opts)) Assert.Bytes(B("hello"), b.Read(), "allowed");
                using (var b = Blackboard.Open("theirs", new ShmbusOptions { AllowAnyOwner = true })) Assert.True(b.Version == 1, "any owner");
            }
            finally
            {
                File.Delete("/dev/shm/shmbus@" + ns + ".theirs");
            }
        }

        [Test]
        public static void OptionsNamespaceAndPersistent()
        {
            using (var b = Blackboard.Create("ns.board", 8, new ShmbusOptions { Namespace = "cs-other-ns" }))
            {
                Assert.Throws<ShmbusNotFoundException>(() => Blackboard.Open("ns.board"), "not in our namespace");
                using (var o = Blackboard.Open("ns.board", new ShmbusOptions { Namespace = "cs-other-ns" })) o.Read();
            }
            Assert.Throws<ShmbusNotFoundException>(() => Blackboard.Open("ns.board", new ShmbusOptions { Namespace = "cs-other-ns" }), "removed with its creator");
            using (Blackboard.Create("kept", 8, new ShmbusOptions { Persistent = true })) { }
            using (var k = Blackboard.Open("kept")) Assert.Equal(0L, k.Version, "persistent: still there");
        }
    }

    public static class ProcessTests
    {
        [Test]
        public static void OriginalScenarioWriterAndThreeReadersOneTheCli()
        {
            const int n = 100;
            var readyEvents = new[] { NamedEvent.Create("ready.1"), NamedEvent.Create("ready.2") };
            using (var w = new SharedMemory("scenario", 64))
            {
                var cli = Start(Cli, "board watch scenario");
                var readers = new[] { Child("reader scenario " + n + " ready.1"), Child("reader scenario " + n + " ready.2") };
                foreach (var e in readyEvents) Assert.True(e.WaitOne(TimeSpan.FromSeconds(20)), "a C# reader attached");
                // The CLI attaches on its own schedule; what it sees after that must be complete.
                Thread.Sleep(100);
                for (int i = 1; i <= n; i++)
                {
                    w.Write(B("v" + i));
                    Thread.Sleep(1);
                }
                var outputs = new List<string[]>();
                foreach (var r in readers)
                {
                    string output = r.StandardOutput.ReadToEnd();
                    Assert.Equal(0, Wait(r, 20, "a C# reader"), "reader exit: " + r.StandardError.ReadToEnd());
                    outputs.Add(output.Split('\n').Where(l => l.Length > 0).ToArray());
                }
                var cliLines = new List<string>();
                WaitUntil(() =>
                {
                    string line = cli.StandardOutput.ReadLine();
                    if (line != null) cliLines.Add(line);
                    return line == null || line == "v" + n;
                }, "the CLI printed the last value");
                cli.Kill();
                cli.WaitForExit();
                foreach (var line in cli.StandardError.ReadToEnd().Split('\n').Where(l => l.StartsWith("skipped: ")))
                    cliLines.Insert(0, "skip " + line.Split(' ')[1]); // order within does not matter for the sum
                outputs.Add(cliLines.ToArray());
                foreach (var lines in outputs) CheckReader(lines, n);
            }
            foreach (var e in readyEvents) e.Dispose();
        }

        /// <summary>Values strictly in order, ending with the last; every gap between two
        /// values seen is a reported skip.</summary>
        private static void CheckReader(string[] lines, int n)
        {
            var values = lines.Where(l => l.StartsWith("v")).Select(l => int.Parse(l.Substring(1))).ToList();
            long skipped = lines.Where(l => l.StartsWith("skip ")).Sum(l => long.Parse(l.Substring(5)));
            Assert.True(values.Count > 0, "the reader saw values: " + string.Join("|", lines));
            for (int k = 1; k < values.Count; k++) Assert.True(values[k] > values[k - 1], "in order: " + string.Join("|", lines));
            Assert.Equal(n, values.Last(), "the last value");
            long gaps = values.Last() - values.First() + 1 - values.Count;
            Assert.True(skipped >= gaps, "every version between the first and last seen was seen or reported skipped (" + gaps + " gaps, " + skipped + " reported): " + string.Join("|", lines));
        }

        [Test]
        public static void TheExamplesWriterAndReaderTalk()
        {
            string bin = Path.GetDirectoryName(typeof(Util).Assembly.Location);
            var reader = Start("mono", "\"" + Path.Combine(bin, "Reader.exe") + "\" example.temp", stdin: true);
            string first = reader.StandardOutput.ReadLine();
            Assert.True(first != null && first.StartsWith("reading example.temp"), "the reader started: " + first);
            var writer = Start("mono", "\"" + Path.Combine(bin, "Writer.exe") + "\" example.temp", stdin: true);
            writer.StandardInput.Write("21.5\n22.0\nexit\n");
            writer.StandardInput.Close();
            string written = writer.StandardOutput.ReadToEnd();
            Assert.Equal(0, Wait(writer, 20, "Writer.exe"), "writer exit: " + writer.StandardError.ReadToEnd());
            Assert.True(written.Contains("wrote version 2"), "the writer wrote twice: " + written);
            var lines = new List<string>();
            WaitUntil(() =>
            {
                string line = reader.StandardOutput.ReadLine();
                if (line != null) lines.Add(line);
                return line == null || line == "received: 22.0";
            }, "the reader received the last value");
            reader.StandardInput.Close();
            Assert.Equal(0, Wait(reader, 20, "Reader.exe"), "reader exit");
            Assert.True(lines.Contains("received: 22.0"), "received: " + string.Join("|", lines));
            Assert.True(lines.Contains("received: 21.5") || lines.Any(l => l.Contains("written faster")), "every value or a reported skip");
        }

        [Test]
        public static void NoHandleLeaksAfter10000Cycles()
        {
            // Warm up (JIT, first mappings), then count.
            Cycle(100);
            int fds = OpenFds(), maps = ShmbusMappings();
            Cycle(10000);
            // The runtime may close descriptors of its own meanwhile; ours must all be gone.
            Assert.True(OpenFds() <= fds, "open file descriptors: " + fds + " before, " + OpenFds() + " after");
            Assert.Equal(maps, ShmbusMappings(), "shmbus mappings");
        }

        private static void Cycle(int n)
        {
            for (int i = 0; i < n; i++)
            {
                using (var shm = new SharedMemory("cycle", 64)) shm.Write(B("x"));
                using (var pub = new Publisher("cyclech", capacity: 4096)) using (var sub = new Subscriber("cyclech")) pub.Send(B("y"));
                using (var e = NamedEvent.Create("cycleev")) e.Set();
                using (var s = Segment.Create("cycleseg", 64)) s.OpenStream().WriteByte(1);
                if (i % 100 == 0)
                {
                    // Disposal really closes: the names are gone at once (not at some GC).
                    Assert.Throws<ShmbusNotFoundException>(() => Blackboard.Open("cycle"), "blackboard removed by Dispose");
                    Assert.Throws<ShmbusNotFoundException>(() => new Subscriber("cyclech"), "channel removed by Dispose");
                    // Handlers and duplex links too (threads and two channels each).
                    using (var shm = new SharedMemory("cyclehandler", 64)) shm.ReceiveHandler += v => { };
                    using (var server = Duplex.Listen("cyclelink")) using (var client = Duplex.Connect("cyclelink")) client.Send(B("z"));
                }
            }
        }
    }

    public static class WaitSetTests
    {
        private static readonly TimeSpan Long = TimeSpan.FromSeconds(10);
        private static readonly TimeSpan Short = TimeSpan.FromMilliseconds(20);

        /// <summary>The keys a wait returned are exactly <paramref name="expected"/> (in key order).</summary>
        private static void Keys(ulong[] actual, string what, params ulong[] expected)
        {
            Assert.Equal(string.Join(",", expected.OrderBy(k => k)), string.Join(",", actual), what);
        }

        [Test]
        public static void WaitSetSubscriberMessagesAndTheEndOfTheStream()
        {
            var pub = new Publisher("ws.ch");
            using (var sub = new Subscriber("ws.ch"))
            using (var set = new WaitSet())
            {
                ulong k = set.AttachSubscriber(sub);
                Assert.Equal(1, set.Count, "one attachment");
                Keys(set.Wait(Short), "nothing sent: the timeout passes, an empty array");
                Keys(set.Wait(TimeSpan.Zero), "a zero timeout only looks");
                pub.Send(B("one"));
                Keys(set.Wait(Long), "a message to receive", k);
                Keys(set.Wait(TimeSpan.Zero), "ready while the message waits", k);
                Assert.Bytes(B("one"), sub.Receive(TimeSpan.Zero), "the message");
                Keys(set.Wait(Short), "received: not ready");
                // A message sent by another thread wakes a wait that has no timeout.
                var sender = new Thread(() => { Thread.Sleep(50); pub.Send(B("two")); });
                sender.Start();
                Keys(set.Wait(), "woken by the other thread's message", k);
                sender.Join();
                Assert.Bytes(B("two"), sub.Receive(TimeSpan.Zero), "its message");
                pub.Dispose();
                Keys(set.Wait(Long), "the end of the stream is ready too", k);
                Assert.Throws<ShmbusDisconnectedException>(() => sub.Receive(TimeSpan.Zero), "and a receive says so");
            }
        }

        [Test]
        public static void WaitSetEventsManualAndAutoReset()
        {
            using (var m = NamedEvent.Create("ws.manual", manualReset: true))
            using (var a = NamedEvent.Create("ws.auto"))
            using (var other = NamedEvent.Open("ws.auto"))
            using (var set = new WaitSet())
            {
                ulong km = set.AttachEvent(m);
                ulong ka = set.AttachEvent(a);
                Assert.True(km != ka, "two keys");
                Keys(set.Wait(Short), "nothing set");
                m.Set();
                Keys(set.Wait(Long), "the manual event", km);
                Keys(set.Wait(TimeSpan.Zero), "ready while set", km);
                Assert.True(m.IsSet, "the set does not reset a manual event");
                m.Reset();
                Keys(set.Wait(Short), "reset: not ready");

                a.Set();
                Keys(set.Wait(Long), "the auto-reset event", ka);
                Assert.True(!other.WaitOne(TimeSpan.Zero), "the set took the release for its caller");
                Keys(set.Wait(Short), "once per release");

                m.Set();
                a.Set();
                Keys(set.Wait(Long), "both, in key order", km, ka);
                m.Reset();
                var setter = new Thread(() => { Thread.Sleep(50); using (var e = NamedEvent.Open("ws.auto")) e.Set(); });
                setter.Start();
                Keys(set.Wait(Long), "set by another thread while waiting", ka);
                setter.Join();
            }
        }

        [Test]
        public static void WaitSetBlackboardsAndKeysOncePerVersion()
        {
            using (var b = Blackboard.Create("ws.board", 64))
            using (var kb = KeyedBlackboard.Create("ws.robot", new[] { "pose", "battery", "mode" }, 64))
            using (var set = new WaitSet())
            {
                b.Write(B("before"));
                ulong kBoard = set.AttachBlackboard(b);
                ulong kPose = set.AttachKey(kb, "pose");
                Keys(set.Wait(Short), "versions written before attaching are not news");
                b.Write(B("one"));
                b.Write(B("two"));
                Keys(set.Wait(Long), "two writes, one report", kBoard);
                Keys(set.Wait(Short), "nothing newer since");
                Assert.Bytes(B("two"), b.Read(), "the board's value");

                kb.Write("battery", B("87%"));
                Keys(set.Wait(Short), "another key's write does not make the key ready");
                kb.Write("pose", B("x=1"));
                Keys(set.Wait(Long), "the key's write does", kPose);
                Keys(set.Wait(Short), "once per version");

                var writer = new Thread(() => { Thread.Sleep(50); b.Write(B("three")); kb.Write("pose", B("x=2")); });
                writer.Start();
                var seen = new HashSet<ulong>();
                while (seen.Count < 2)
                    foreach (ulong k in set.Wait(Long)) Assert.True(seen.Add(k), "each reported once");
                writer.Join();
                Keys(seen.ToArray(), "both written by another thread", kBoard, kPose);

                // The set keeps its own reference: a reader disposed after attaching is fine.
                ulong kMode;
                using (var reader = KeyedBlackboard.Open("ws.robot")) kMode = set.AttachKey(reader, "mode");
                kb.Write("mode", B("auto"));
                Keys(set.Wait(Long), "a key attached through a disposed reader", kMode);
            }
        }

        [Test]
        public static void WaitSetTimers()
        {
            using (var set = new WaitSet())
            {
                var sw = Stopwatch.StartNew();
                ulong k = set.AttachTimer(TimeSpan.FromMilliseconds(30));
                Keys(set.Wait(Long), "the first period", k);
                Assert.True(sw.ElapsedMilliseconds >= 20, "not before its period: " + sw.ElapsedMilliseconds + " ms");
                for (int i = 0; i < 3; i++) Keys(set.Wait(Long), "every period", k);
                Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), "four periods took " + sw.ElapsedMilliseconds + " ms");
                ulong slow = set.AttachTimer(TimeSpan.FromHours(1));
                Assert.True(slow != k, "its own key");
                Keys(set.Wait(Long), "the slow timer is not due", k);

                var e = Assert.Throws<ShmbusException>(() => set.AttachTimer(TimeSpan.Zero), "a zero period");
                Assert.Equal(Status.Invalid, e.Status, "invalid");
                Assert.Throws<ArgumentOutOfRangeException>(() => set.AttachTimer(TimeSpan.FromMilliseconds(-1)), "a negative period");
                Assert.Throws<ArgumentOutOfRangeException>(() => set.AttachTimer(Timeout.InfiniteTimeSpan), "an infinite period");
                Assert.Equal(2, set.Count, "failed attachments are not counted");
            }
        }

        [Test]
        public static void WaitSetAppearances()
        {
            using (var set = new WaitSet())
            {
                ulong k = set.AttachAppearance("ws.late");
                Keys(set.Wait(Short), "nothing there yet");
                var opened = new ManualResetEvent(false);
                var creator = new Thread(() =>
                {
                    Thread.Sleep(50);
                    using (var board = Blackboard.Create("ws.late", 64))
                    {
                        board.Write(B("late value"));
                        opened.WaitOne(10000);
                    }
                });
                creator.Start();
                try
                {
                    Keys(set.Wait(Long), "created by another thread", k);
                    using (var board = Blackboard.Open("ws.late")) Assert.Equal(64, board.Capacity, "it can be opened then");
                }
                finally
                {
                    opened.Set();
                    creator.Join();
                }
                Keys(set.Wait(Short), "reported once");

                // An object that exists already is ready at the next wait.
                using (var ev = NamedEvent.Create("ws.there"))
                {
                    ulong there = set.AttachAppearance("ws.there");
                    Keys(set.Wait(TimeSpan.Zero), "already there", there);
                }

                // In the options' namespace, not the default one.
                string ns = Environment.GetEnvironmentVariable("SHMBUS_NAMESPACE") + "-other";
                var elsewhere = new ShmbusOptions { Namespace = ns };
                ulong other = set.AttachAppearance("ws.elsewhere", elsewhere);
                using (NamedEvent.Create("ws.elsewhere"))
                    Keys(set.Wait(Short), "the same name in the default namespace is not it");
                using (NamedEvent.Create("ws.elsewhere", options: elsewhere))
                    Keys(set.Wait(Long), "created in the options' namespace", other);

                var e = Assert.Throws<ShmbusException>(() => set.AttachAppearance("no/slashes"), "an invalid name");
                Assert.Equal(Status.Invalid, e.Status, "invalid");
                Assert.Throws<ArgumentNullException>(() => set.AttachAppearance(null), "no name");
            }
        }

        [Test]
        public static void WaitSetSourcesInOtherProcesses()
        {
            using (var board = Blackboard.Create("ws.cli", 64))
            using (var ev = NamedEvent.Create("ws.clievent", manualReset: true))
            using (var set = new WaitSet())
            {
                ulong kBoard = set.AttachBlackboard(board);
                ulong kEvent = set.AttachEvent(ev);
                ulong kNew = set.AttachAppearance("ws.clinew");

                var w = Start(Cli, "board write ws.cli hello");
                Keys(set.Wait(Long), "the CLI wrote the board", kBoard);
                Assert.Equal(0, Wait(w, 10, "shmbus board write"), "exit code: " + w.StandardError.ReadToEnd());
                Assert.Bytes(B("hello"), board.Read(), "the CLI's value");

                var s = Start(Cli, "event set ws.clievent");
                Keys(set.Wait(Long), "the CLI set the event", kEvent);
                Assert.Equal(0, Wait(s, 10, "shmbus event set"), "exit code: " + s.StandardError.ReadToEnd());
                ev.Reset();

                var c = Start(Cli, "board write ws.clinew fresh");
                Keys(set.Wait(Long), "the CLI created a board", kNew);
                Assert.Equal(0, Wait(c, 10, "shmbus board write (new)"), "exit code: " + c.StandardError.ReadToEnd());
                using (var created = Blackboard.Open("ws.clinew")) Assert.Bytes(B("fresh"), created.Read(), "its value");
            }

            // A publisher in a child process: its channel appears, its message arrives, and
            // its death (kill -9, no cleanup) wakes the set.
            using (var set = new WaitSet())
            {
                ulong kChannel = set.AttachAppearance("ws.gone");
                var child = Child("publisher ws.gone");
                try
                {
                    Keys(set.Wait(TimeSpan.FromSeconds(20)), "the child's channel appeared", kChannel);
                    using (var sub = new Subscriber("ws.gone"))
                    {
                        ulong k = set.AttachSubscriber(sub);
                        Keys(set.Wait(Long), "the child's message", k);
                        Assert.Bytes(B("before the crash"), sub.Receive(TimeSpan.Zero), "received");
                        Keys(set.Wait(Short), "not ready while the publisher lives");
                        KillHard(child);
                        Keys(set.Wait(Long), "the publisher's death", k);
                        Assert.True(!sub.PublisherAlive, "dead");
                        // A receive that does not wait reports it too (after the set's report),
                        // so a wait-then-try loop ends; so does one that waits.
                        byte[] none;
                        Assert.Throws<ShmbusPublisherGoneException>(() => sub.TryReceive(out none), "a try reports it");
                        Keys(set.Wait(Short), "still ready: the publisher stays dead", k);
                        var sw = Stopwatch.StartNew();
                        Assert.Throws<ShmbusPublisherGoneException>(() => sub.Receive(Long), "which a receive reports");
                        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), "at once: " + sw.ElapsedMilliseconds + " ms");
                    }
                }
                finally
                {
                    if (!child.HasExited) child.Kill();
                }
            }
        }

        [Test]
        public static void WaitSetDetach()
        {
            using (var e = NamedEvent.Create("ws.detach", manualReset: true))
            using (var set = new WaitSet())
            {
                e.Set();
                ulong k1 = set.AttachEvent(e);
                ulong k2 = set.AttachEvent(e);
                Keys(set.Wait(Long), "both attachments of the event", k1, k2);
                set.Detach(k1);
                Assert.Equal(1, set.Count, "one left");
                Keys(set.Wait(Long), "the detached key is not reported", k2);
                var twice = Assert.Throws<ShmbusException>(() => set.Detach(k1), "detaching twice");
                Assert.Equal(Status.Invalid, twice.Status, "invalid");
                Assert.Throws<ShmbusException>(() => set.Detach(12345), "a key never attached");
                Assert.Equal(1, set.Count, "failed detaches change nothing");
                set.Detach(k2);
                Keys(set.Wait(Short), "nothing attached: the timeout passes");
                ulong k3 = set.AttachEvent(e);
                Keys(set.Wait(Long), "attached again", k3);
            }
        }

        [Test]
        public static void WaitSetErrorsAndDisposedObjects()
        {
            var set = new WaitSet();
            using (var kb = KeyedBlackboard.Create("ws.keys", new[] { "pose", "battery" }, 8))
            {
                var u = Assert.Throws<ShmbusUnknownKeyException>(() => set.AttachKey(kb, "speed"), "an unknown key");
                Assert.Equal("speed", u.Key, "the key asked for");
                Assert.Equal(Status.UnknownKey, u.Status, "status");
                Assert.True(u.Message.Contains("speed"), "the message names it: " + u.Message);
                Assert.Throws<ShmbusUnknownKeyException>(() => set.AttachKey(kb, "po\0se"), "a key no C string can name");
                Assert.Throws<ArgumentNullException>(() => set.AttachKey(kb, null), "no key");
            }
            Assert.Equal(0, set.Count, "nothing attached by the failures");
            Assert.Throws<InvalidOperationException>(() => set.Wait(), "an empty set would wait forever");
            Keys(set.Wait(Short), "an empty set waits out its timeout");
            Assert.Throws<ArgumentOutOfRangeException>(() => set.Wait(TimeSpan.FromSeconds(-1)), "a negative timeout");
            Assert.Throws<ArgumentNullException>(() => set.AttachSubscriber(null), "no subscriber");
            Assert.Throws<ArgumentNullException>(() => set.AttachEvent(null), "no event");
            Assert.Throws<ArgumentNullException>(() => set.AttachBlackboard(null), "no board");
            Assert.Throws<ArgumentNullException>(() => set.AttachKey(null, "pose"), "no keyed board");

            // Attaching disposed objects.
            var pub = new Publisher("ws.disposed");
            var sub = new Subscriber("ws.disposed");
            sub.Dispose();
            Assert.Throws<ObjectDisposedException>(() => set.AttachSubscriber(sub), "a disposed subscriber");
            var ev = NamedEvent.Create("ws.disposed.ev");
            ev.Dispose();
            Assert.Throws<ObjectDisposedException>(() => set.AttachEvent(ev), "a disposed event");
            var b = Blackboard.Create("ws.disposed.b", 8);
            b.Dispose();
            Assert.Throws<ObjectDisposedException>(() => set.AttachBlackboard(b), "a disposed blackboard");
            var kd = KeyedBlackboard.Create("ws.disposed.k", new[] { "pose" }, 8);
            kd.Dispose();
            Assert.Throws<ObjectDisposedException>(() => set.AttachKey(kd, "pose"), "a disposed keyed blackboard");
            Assert.Throws<ObjectDisposedException>(() => set.AttachKey(kd, "speed"), "disposed comes before unknown key");
            using (var handed = new Subscriber("ws.disposed"))
            {
                handed.Received += m => { };
                Assert.Throws<InvalidOperationException>(() => set.AttachSubscriber(handed), "a subscriber handed to its Received thread");
            }
            Assert.Equal(0, set.Count, "still nothing attached");

            // Disposing an object after attaching it is safe: the set keeps its own reference,
            // and a disposed subscriber is never reported again (nobody could receive).
            var late = new Subscriber("ws.disposed");
            ulong k = set.AttachSubscriber(late);
            late.Dispose();
            pub.Send(B("nobody receives this"));
            Keys(set.Wait(Short), "a disposed subscriber is not reported");
            set.Detach(k);
            pub.Dispose();

            // At most 127 subscribers, events and boards (one futex_waitv); timers do not count.
            using (var many = NamedEvent.Create("ws.many"))
            {
                for (int i = 0; i < 127; i++) set.AttachEvent(many);
                var full = Assert.Throws<ShmbusException>(() => set.AttachEvent(many), "the 128th object");
                Assert.Equal(Status.Invalid, full.Status, "invalid");
                Assert.True(full.Message.Contains("127"), "the message says the limit: " + full.Message);
                set.AttachTimer(TimeSpan.FromHours(1));
                Assert.Equal(128, set.Count, "127 events and a timer");
            }

            // A disposed set.
            set.Dispose();
            Assert.Throws<ObjectDisposedException>(() => set.Wait(TimeSpan.Zero), "wait");
            Assert.Throws<ObjectDisposedException>(() => set.AttachTimer(TimeSpan.FromSeconds(1)), "attach a timer");
            Assert.Throws<ObjectDisposedException>(() => set.AttachAppearance("x"), "attach an appearance");
            Assert.Throws<ObjectDisposedException>(() => set.Detach(0), "detach");
            using (var e2 = NamedEvent.Create("ws.after"))
                Assert.Throws<ObjectDisposedException>(() => set.AttachEvent(e2), "attach an event");
            set.Dispose(); // twice is harmless
        }

        [Test]
        public static void WaitSetReturnsEveryReadyKeyInOneWait()
        {
            // More ready attachments than the set's first buffer holds (16), and than any
            // one size: 100 event attachments (level-triggered) and 100 timers.
            var events = Enumerable.Range(0, 5).Select(i => NamedEvent.Create("ws.bulk." + i, manualReset: true)).ToArray();
            try
            {
                using (var set = new WaitSet())
                {
                    var eventKeys = new List<ulong>();
                    var timerKeys = new List<ulong>();
                    for (int i = 0; i < 100; i++) eventKeys.Add(set.AttachEvent(events[i % events.Length]));
                    for (int i = 0; i < 100; i++) timerKeys.Add(set.AttachTimer(TimeSpan.FromMilliseconds(1)));
                    Assert.Equal(200, set.Count, "200 attachments");
                    Thread.Sleep(20); // every timer is due
                    var all = eventKeys.Concat(timerKeys).ToArray();
                    Assert.Equal(200, all.Distinct().Count(), "200 different keys");
                    Keys(set.Wait(Long), "every timer, no event yet", timerKeys.ToArray());
                    foreach (var e in events) e.Set();
                    Thread.Sleep(20);
                    Keys(set.Wait(Long), "all 200 in one wait", all);
                    var again = set.Wait(Long);
                    Assert.Equal(again.Length, again.Distinct().Count(), "each key once");
                    Assert.True(eventKeys.All(again.Contains), "the events are still set: all reported again");
                    foreach (ulong k in eventKeys.Take(50)) set.Detach(k);
                    foreach (ulong k in timerKeys) set.Detach(k);
                    Keys(set.Wait(Long), "what is left", eventKeys.Skip(50).ToArray());
                }
            }
            finally
            {
                foreach (var e in events) e.Dispose();
            }
        }

        [Test]
        public static void WaitSetIsUsedByOneThreadAtATime()
        {
            using (var e = NamedEvent.Create("ws.busy"))
            {
                var set = new WaitSet();
                ulong k = set.AttachEvent(e);
                ulong[] got = null;
                Exception failed = null;
                var waiter = new Thread(() =>
                {
                    try { got = set.Wait(Long); }
                    catch (Exception x) { failed = x; }
                });
                waiter.Start();
                // Once the other thread is in its wait, every call here is refused.
                WaitUntil(() =>
                {
                    try { set.Detach(k + 1000); }
                    catch (InvalidOperationException) { return true; }
                    catch (ShmbusException) { }
                    return false;
                }, "the other thread's wait");
                Assert.Throws<InvalidOperationException>(() => set.AttachTimer(TimeSpan.FromSeconds(1)), "attach during a wait");
                Assert.Throws<InvalidOperationException>(() => set.Wait(TimeSpan.Zero), "a second wait");
                // Dispose may come from here: the close waits for the wait to return. (Give
                // the other thread time to get from its checks into the library's wait; a
                // Dispose before that makes its Wait throw ObjectDisposedException instead.)
                Thread.Sleep(100);
                set.Dispose();
                e.Set();
                Assert.True(waiter.Join(10000), "the wait returned");
                if (!(failed is ObjectDisposedException))
                {
                    Assert.True(failed == null, "the wait failed: " + failed);
                    Keys(got, "the wait in progress ended normally", k);
                }
                Assert.Throws<ObjectDisposedException>(() => set.Wait(TimeSpan.Zero), "disposed afterwards");
            }
        }
    }
}
