// The roles child processes play in the cross-process tests.
using System;
using System.Threading;

namespace Shmbus.Tests
{
    public static class Children
    {
        public static int Run(string[] args)
        {
            switch (args[0])
            {
                case "reader": return Reader(args[1], int.Parse(args[2]), args[3]);
                case "publisher": return Publish(args[1]);
                case "abandon": return Abandon(args[1]);
                default:
                    Console.Error.WriteLine("unknown child role " + args[0]);
                    return 2;
            }
        }

        /// <summary>The original design's reader: a SharedMemory with a ReceiveHandler that
        /// prints each value (and "skip N" before a value when versions were skipped) until it
        /// sees value "v{last}"; sets event READY once its handler is attached.</summary>
        private static int Reader(string name, int last, string ready)
        {
            var done = new ManualResetEvent(false);
            long reported = 0;
            using (var shm = new SharedMemory(name, 64))
            {
                shm.ReceiveHandler += data =>
                {
                    long skipped = shm.Skipped;
                    if (skipped > reported)
                    {
                        Console.WriteLine("skip " + (skipped - reported));
                        reported = skipped;
                    }
                    string v = Util.S(data);
                    Console.WriteLine(v);
                    if (v == "v" + last) done.Set();
                };
                using (var e = NamedEvent.Open(ready)) e.Set();
                if (!done.WaitOne(TimeSpan.FromSeconds(20))) return 3;
            }
            return 0;
        }

        /// <summary>Starts a receive handler, lets it run a callback, and returns from Main
        /// without disposing anything: the process must still exit.</summary>
        private static int Abandon(string name)
        {
            var shm = new SharedMemory(name, 64);
            var called = new ManualResetEvent(false);
            shm.ReceiveHandler += d => called.Set();
            shm.Write(Util.B("x"));
            if (!called.WaitOne(TimeSpan.FromSeconds(10))) return 3;
            Console.WriteLine("returning");
            GC.KeepAlive(shm);
            return 0;
        }

        /// <summary>A publisher that sends one message, then waits to be killed.</summary>
        private static int Publish(string name)
        {
            using (var pub = new Publisher(name))
            {
                pub.WaitForSubscribers(1, TimeSpan.FromSeconds(10));
                pub.Send(Util.B("before the crash"));
                Console.WriteLine("sent");
                Thread.Sleep(Timeout.Infinite);
            }
            return 0;
        }
    }
}
