// A small test runner (no NUnit on a bare Mono install): runs every [Test] method, each in a
// namespace of its own, and prints "N passed, N failed". `Tests.exe --child ROLE ...` runs a
// child process's role for the cross-process tests.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Reflection;

namespace Shmbus.Tests
{
    [AttributeUsage(AttributeTargets.Method)]
    public sealed class TestAttribute : Attribute { }

    public static class Runner
    {
        public static int Main(string[] args)
        {
            if (args.Length > 0 && args[0] == "--child") return Children.Run(args.Skip(1).ToArray());
            string filter = args.Length > 0 ? args[0] : null;
            var tests = typeof(Runner).Assembly.GetTypes()
                .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Static))
                .Where(m => m.GetCustomAttributes(typeof(TestAttribute), false).Length > 0)
                .Where(m => filter == null || (m.DeclaringType.Name + "." + m.Name).Contains(filter))
                .OrderBy(m => m.DeclaringType.Name + "." + m.Name)
                .ToList();
            int passed = 0, failed = 0, n = 0;
            var total = Stopwatch.StartNew();
            foreach (var test in tests)
            {
                string name = test.DeclaringType.Name + "." + test.Name;
                string ns = "cs-" + Process.GetCurrentProcess().Id + "-" + (n++);
                Environment.SetEnvironmentVariable("SHMBUS_NAMESPACE", ns);
                var sw = Stopwatch.StartNew();
                try
                {
                    test.Invoke(null, null);
                    passed++;
                    Console.WriteLine("ok   " + name + " (" + sw.ElapsedMilliseconds + " ms)");
                }
                catch (TargetInvocationException e)
                {
                    failed++;
                    Console.WriteLine("FAIL " + name + ": " + e.InnerException);
                }
                finally
                {
                    Util.RemoveNamespace(ns);
                }
            }
            Console.WriteLine(passed + " passed, " + failed + " failed (" + total.Elapsed.TotalSeconds.ToString("F1") + " s)");
            return failed == 0 && passed > 0 ? 0 : 1;
        }
    }

    /// <summary>Assertions that say what differed.</summary>
    public static class Assert
    {
        public static void True(bool cond, string what)
        {
            if (!cond) throw new Exception("assertion failed: " + what);
        }

        public static void Equal<T>(T expected, T actual, string what)
        {
            if (!EqualityComparer<T>.Default.Equals(expected, actual))
                throw new Exception(what + ": expected <" + expected + ">, got <" + actual + ">");
        }

        public static void Bytes(byte[] expected, byte[] actual, string what)
        {
            if (expected.Length != actual.Length || !expected.SequenceEqual(actual))
                throw new Exception(what + ": expected " + BitConverter.ToString(expected) + ", got " + BitConverter.ToString(actual));
        }

        public static TException Throws<TException>(Action action, string what) where TException : Exception
        {
            try { action(); }
            catch (TException e) { return e; }
            catch (Exception e) { throw new Exception(what + ": expected " + typeof(TException).Name + ", got " + e); }
            throw new Exception(what + ": expected " + typeof(TException).Name + ", nothing was thrown");
        }
    }
}
