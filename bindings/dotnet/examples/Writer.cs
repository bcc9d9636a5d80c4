// The original article's writer, on Shmbus.SharedMemory: each line typed (or piped) becomes
// the shared value; "exit" ends it.
//   mono Writer.exe [NAME]
using System;
using System.Text;
using Shmbus;

public static class Writer
{
    public static int Main(string[] args)
    {
        string name = args.Length > 0 ? args[0] : "plant.temp";
        try
        {
            using (var shm = new SharedMemory(name, 1024))
            {
                Console.WriteLine("writing to " + name + "; type values, 'exit' to stop");
                string line;
                while ((line = Console.ReadLine()) != null && line != "exit")
                {
                    shm.Write(Encoding.UTF8.GetBytes(line));
                    Console.WriteLine("wrote version " + shm.Version);
                }
            }
            return 0;
        }
        catch (ShmbusException e)
        {
            // The original swallowed errors; here they say what went wrong and what to do.
            Console.Error.WriteLine("error: " + e.Message);
            return 1;
        }
    }
}
