// The original article's reader, on Shmbus.SharedMemory: prints every value the writer
// writes, from a receive handler on a background thread, until Enter is pressed (or
// standard input ends).
//   mono Reader.exe [NAME]
using System;
using System.Text;
using Shmbus;

public static class Reader
{
    public static int Main(string[] args)
    {
        string name = args.Length > 0 ? args[0] : "plant.temp";
        try
        {
            using (var shm = new SharedMemory(name, 1024))
            {
                long reported = 0;
                shm.ReceiveHandler += data =>
                {
                    long skipped = shm.Skipped;
                    if (skipped > reported)
                    {
                        Console.WriteLine("(" + (skipped - reported) + " values written faster than shown)");
                        reported = skipped;
                    }
                    Console.WriteLine("received: " + Encoding.UTF8.GetString(data));
                };
                Console.WriteLine("reading " + name + " (current: \"" + Encoding.UTF8.GetString(shm.Read()) + "\"); Enter stops");
                Console.ReadLine();
            } // Dispose joins the handler thread: no Sleep(100)
            return 0;
        }
        catch (ShmbusException e)
        {
            Console.Error.WriteLine("error: " + e.Message);
            return 1;
        }
    }
}
