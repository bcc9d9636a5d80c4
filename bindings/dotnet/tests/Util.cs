// Helpers shared by the tests: processes, the CLI, /proc counts, cleanup.
using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;

namespace Shmbus.Tests
{
    public static class Util
    {
        public static byte[] B(string s) { return Encoding.UTF8.GetBytes(s); }
        public static string S(byte[] b) { return Encoding.UTF8.GetString(b); }

        /// <summary>The repository's root (this file's ../../..).</summary>
        public static string Repo
        {
            get
            {
                string dir = Path.GetDirectoryName(typeof(Util).Assembly.Location);
                return Path.GetFullPath(Path.Combine(dir, "..", "..", ".."));
            }
        }

        /// <summary>The shmbus CLI: $SHMBUS_CLI, else target/debug/shmbus of the repository.</summary>
        public static string Cli
        {
            get
            {
                string env = Environment.GetEnvironmentVariable("SHMBUS_CLI");
                string path = string.IsNullOrEmpty(env) ? Path.Combine(Repo, "target", "debug", "shmbus") : env;
                if (!File.Exists(path)) throw new Exception("the shmbus CLI is missing at " + path + ": cargo build -p shmbus-cli, or set SHMBUS_CLI");
                return path;
            }
        }

        /// <summary>Starts a process with redirected output (and input when asked).</summary>
        public static Process Start(string file, string args, bool stdin = false)
        {
            var psi = new ProcessStartInfo(file, args)
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = stdin,
            };
            return Process.Start(psi);
        }

        /// <summary>This test runner again, in a child role.</summary>
        public static Process Child(string args)
        {
            string exe = typeof(Util).Assembly.Location;
            return Start("mono", "--debug \"" + exe + "\" --child " + args);
        }

        /// <summary>Waits for a process; kills it and fails after <paramref name="seconds"/>.</summary>
        public static int Wait(Process p, int seconds, string what)
        {
            if (!p.WaitForExit(seconds * 1000))
            {
                try { p.Kill(); } catch (InvalidOperationException) { }
                throw new Exception(what + " did not end within " + seconds + " s");
            }
            p.WaitForExit();
            return p.ExitCode;
        }

        /// <summary>Runs until <paramref name="cond"/> holds; fails after 10 s.</summary>
        public static void WaitUntil(Func<bool> cond, string what)
        {
            var sw = Stopwatch.StartNew();
            while (!cond())
            {
                if (sw.Elapsed > TimeSpan.FromSeconds(10)) throw new Exception("timed out waiting for " + what);
                Thread.Sleep(1);
            }
        }

        /// <summary>Open file descriptors of this process.</summary>
        public static int OpenFds() { return Directory.GetFiles("/proc/self/fd").Length; }

        /// <summary>Mappings of shmbus objects in this process.</summary>
        public static int ShmbusMappings()
        {
            return File.ReadAllLines("/proc/self/maps").Count(l => l.Contains("/dev/shm/shmbus"));
        }

        /// <summary>Removes what a test left in its namespace.</summary>
        public static void RemoveNamespace(string ns)
        {
            foreach (var f in Directory.GetFiles("/dev/shm", "shmbus@" + ns + ".*"))
            {
                try { File.Delete(f); } catch (IOException) { }
            }
        }

        /// <summary>Sends SIGKILL (no cleanup) to <paramref name="p"/>.</summary>
        public static void KillHard(Process p)
        {
            using (var kill = Process.Start("kill", "-9 " + p.Id)) kill.WaitForExit();
            p.WaitForExit();
        }
    }
}
