//! `shmbus event ...`

use shmbus::{Event, EventMode, Options};

use crate::cli::EventCmd;
use crate::Outcome;

pub(crate) fn run(cmd: EventCmd, opts: Options) -> anyhow::Result<Outcome> {
    match cmd {
        EventCmd::Create {
            name,
            auto_reset,
            mode,
        } => {
            let kind = if auto_reset {
                EventMode::AutoReset
            } else {
                EventMode::ManualReset
            };
            Event::create_with(&name, kind, &opts.mode(mode).persistent(true))?;
        }
        EventCmd::Set { name } => Event::open_with(&name, &opts)?.set(),
        EventCmd::Reset { name } => Event::open_with(&name, &opts)?.reset(),
        EventCmd::Wait { name, timeout } => {
            let event = Event::open_with(&name, &opts)?;
            match timeout {
                None => event.wait(),
                Some(t) => {
                    if !event.wait_timeout(t) {
                        return Ok(Outcome::TimedOut);
                    }
                }
            }
        }
    }
    Ok(Outcome::Done)
}
