//! The command line, as clap parses it.

use std::time::Duration;

use clap::{Parser, Subcommand};

/// Inter-process communication through shared memory: inspect and drive shmbus objects.
///
/// Objects live in /dev/shm as `shmbus.<name>` (or `shmbus@<namespace>.<name>`).
/// Exit codes: 0 success, 1 error, 2 usage error, 3 timeout, 4 publisher died,
/// 130/143 stopped by SIGINT/SIGTERM (after cleaning up).
#[derive(Debug, Parser)]
#[command(name = "shmbus", version, propagate_version = true)]
pub(crate) struct Cli {
    /// Namespace to work in (keeps applications, tests and containers apart).
    #[arg(long, global = true, env = "SHMBUS_NAMESPACE", value_name = "NS")]
    pub namespace: Option<String>,

    /// Also accept objects owned by user UID (repeatable). By default every command refuses
    /// an existing object that another user owns: someone may have created it first to read
    /// or forge what you exchange.
    #[arg(long, global = true, value_name = "UID")]
    pub allow_owner: Vec<u32>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Latest-value blackboards: write, read, watch.
    #[command(subcommand)]
    Board(BoardCmd),
    /// Cross-process events: create, set, reset, wait.
    #[command(subcommand)]
    Event(EventCmd),
    /// Creates a broadcast channel and publishes each line of standard input as a message.
    Pub(PubArgs),
    /// Subscribes to a channel and prints each message followed by a newline.
    Sub(SubArgs),
    /// Request/response links: an echo server and a client.
    #[command(subcommand)]
    Duplex(DuplexCmd),
    /// Removes objects whose owners are all dead.
    Gc {
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Measures shmbus against the floors and kernel IPC, in two processes, in one run.
    Bench(crate::bench::BenchArgs),
    /// (internal) the other process of a benchmark case.
    #[command(hide = true)]
    BenchPeer(crate::bench::PeerArgs),
    /// Lists every shmbus object in the namespace.
    Ls {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Shows an object's header and live state.
    Info {
        /// Object name.
        name: String,
        /// Print a JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Removes objects (processes that have them open keep their mapping).
    Rm {
        /// Object names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Runs the original scenario end to end: one writer and three readers, in separate
    /// processes, with receive handlers and events.
    Demo,
    /// (internal) one subscriber process of the demo.
    #[command(hide = true)]
    DemoSubscriber {
        /// Subscriber number.
        #[arg(long)]
        id: u32,
    },
    /// (internal) one reader process of the demo.
    #[command(hide = true)]
    DemoReader {
        /// Reader number.
        #[arg(long)]
        id: u32,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct PubArgs {
    /// Channel name.
    pub name: String,
    /// Ring size in bytes (a power of two).
    #[arg(long, default_value_t = 256 * 1024, value_name = "BYTES")]
    pub capacity: usize,
    /// Largest message in bytes, at least 1 and at most half the capacity less 16 (default:
    /// 16384, or the most the capacity allows when that is less).
    #[arg(long, value_name = "BYTES")]
    pub max_message: Option<usize>,
    /// How many subscribers may attach at once (1 to 1024).
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub max_subscribers: usize,
    /// Never overwrite what a subscriber has not read (wait instead of losing messages).
    #[arg(long)]
    pub backpressure: bool,
    /// Wait until N subscribers are attached before publishing.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub wait_subscribers: usize,
    /// Give up (exit 3) when the subscribers have not come within SECS seconds (default
    /// 10); with --backpressure, also when a send cannot proceed for that long.
    #[arg(long, value_parser = parse_secs, value_name = "SECS")]
    pub timeout: Option<Duration>,
    /// Permission bits in octal.
    #[arg(long, default_value = "0600", value_parser = parse_mode, value_name = "OCTAL")]
    pub mode: u32,
}

#[derive(Debug, clap::Args)]
pub(crate) struct SubArgs {
    /// Channel name.
    pub name: String,
    /// Exit 0 after N messages.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Give up (exit 3) when the channel does not exist within SECS seconds (default 10),
    /// or, once subscribed, when no message comes for SECS seconds (default: wait forever).
    #[arg(long, value_parser = parse_secs, value_name = "SECS")]
    pub timeout: Option<Duration>,
    /// Start with the oldest message still in the ring instead of the next one.
    #[arg(long)]
    pub from_oldest: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DuplexCmd {
    /// Runs an echo server on link NAME: every request is answered with its own bytes.
    Serve {
        /// Link name.
        name: String,
    },
    /// Sends DATA as a request on link NAME and prints the reply.
    Request {
        /// Link name.
        name: String,
        /// The request.
        data: String,
        /// Give up (exit 3) after SECS seconds (default 10), including waiting for the
        /// server to listen.
        #[arg(long, value_parser = parse_secs, value_name = "SECS")]
        timeout: Option<Duration>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum BoardCmd {
    /// Writes a value, creating the blackboard if it is missing. Without DATA, writes all of
    /// standard input. With --key, writes that key of a keyed blackboard (created with
    /// --keys if it is missing).
    Write {
        /// Blackboard name.
        name: String,
        /// The key to write, on a keyed blackboard.
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
        /// Every key of the keyed blackboard, comma-separated, used when it is created
        /// (its keys are fixed then).
        #[arg(
            long,
            value_name = "KEY,KEY,...",
            value_delimiter = ',',
            requires = "key"
        )]
        keys: Option<Vec<String>>,
        /// Capacity in bytes (of each key's value), used when the blackboard is created.
        #[arg(long, default_value_t = 4096, value_name = "BYTES")]
        capacity: usize,
        /// Permission bits in octal, used when the blackboard is created.
        #[arg(long, default_value = "0600", value_parser = parse_mode, value_name = "OCTAL")]
        mode: u32,
        /// The value (default: standard input).
        data: Option<String>,
    },
    /// Writes the latest value's bytes to standard output, exactly.
    Read {
        /// Blackboard name.
        name: String,
        /// The key to read, on a keyed blackboard.
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
    },
    /// Prints each new value followed by a newline, as it is written; values written faster
    /// than it prints are reported on stderr as `skipped: N versions`.
    Watch {
        /// Blackboard name.
        name: String,
        /// The key to watch, on a keyed blackboard.
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
        /// Exit 0 after this many values.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Exit 3 when the values have not all arrived within SECS seconds (this includes
        /// waiting for the blackboard to be created).
        #[arg(long, value_parser = parse_secs, value_name = "SECS")]
        timeout: Option<Duration>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum EventCmd {
    /// Creates an event (manual-reset unless --auto-reset); it outlives this command.
    Create {
        /// Event name.
        name: String,
        /// Each set releases exactly one waiter, then the event resets itself.
        #[arg(long)]
        auto_reset: bool,
        /// Permission bits in octal.
        #[arg(long, default_value = "0600", value_parser = parse_mode, value_name = "OCTAL")]
        mode: u32,
    },
    /// Sets the event.
    Set {
        /// Event name.
        name: String,
    },
    /// Resets the event.
    Reset {
        /// Event name.
        name: String,
    },
    /// Waits for the event: exit 0 when released, 3 on timeout.
    Wait {
        /// Event name.
        name: String,
        /// Give up after SECS seconds.
        #[arg(long, value_parser = parse_secs, value_name = "SECS")]
        timeout: Option<Duration>,
    },
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let mode = u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| format!("`{s}` is not an octal mode like 0600 or 644"))?;
    if mode > 0o777 {
        return Err(format!("`{s}` has bits beyond 0777"));
    }
    Ok(mode)
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{s}` is not a valid duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_durations() {
        assert_eq!(parse_mode("0644"), Ok(0o644));
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert!(parse_mode("0999").is_err());
        assert!(parse_mode("7777").is_err());
        assert_eq!(parse_secs("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("soon").is_err());
    }

    #[test]
    fn the_interface_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
