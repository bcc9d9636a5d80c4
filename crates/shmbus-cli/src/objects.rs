//! `shmbus ls`, `shmbus info`, `shmbus rm`.

use std::io::{self, Write};
use std::time::SystemTime;

use serde_json::{json, Value};
use shmbus::{HeaderInfo, LiveState, ObjectInfo, Options, Segment};

use crate::Outcome;

pub(crate) fn ls(namespace: Option<&str>, as_json: bool) -> anyhow::Result<Outcome> {
    let objects = shmbus::list(namespace)?;
    let mut out = io::stdout().lock();
    if as_json {
        let rows: Vec<Value> = objects
            .iter()
            .map(|o| {
                let mut v = summary_json(o);
                if let Some(h) = &o.header {
                    v["capacity"] = json!(h.capacity);
                    v["state"] = state_json(h);
                }
                v
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(Outcome::Done);
    }
    let users = Users::load();
    writeln!(
        out,
        "{:<32} {:<16} {:>10} {:<10} {:<5} {:<5} {:<20} STATE",
        "NAME", "KIND", "SIZE", "OWNER", "MODE", "ALIVE", "CREATED"
    )?;
    for o in &objects {
        writeln!(
            out,
            "{:<32} {:<16} {:>10} {:<10} {:04o}  {:<5} {:<20} {}",
            o.name.as_str(),
            kind_str(o),
            o.size,
            users.name(o.owner),
            o.mode,
            alive_str(o.alive),
            o.header
                .as_ref()
                .map_or_else(|| "-".to_owned(), |h| time_str(h.created)),
            o.header
                .as_ref()
                .map_or_else(|| o.problem.clone().unwrap_or_default(), state_summary),
        )?;
    }
    Ok(Outcome::Done)
}

/// One line of live state for `ls`.
fn state_summary(h: &HeaderInfo) -> String {
    match &h.state {
        LiveState::Event {
            mode, set, waiters, ..
        } => {
            format!(
                "{mode}, {}, {waiters} waiting",
                if *set { "set" } else { "unset" }
            )
        }
        LiveState::Blackboard { version, len, .. } => {
            format!("version {version}, {len} bytes, capacity {}", h.capacity)
        }
        LiveState::KeyedBlackboard { keys, .. } => {
            let written = keys.iter().filter(|k| k.version > 0).count();
            format!(
                "{} keys ({written} written), capacity {} each",
                keys.len(),
                h.capacity
            )
        }
        LiveState::Channel {
            mode,
            published,
            subscribers,
            publisher_alive,
            closed,
            ..
        } => format!(
            "{}, capacity {}, {subscribers} subscribers, {published} published{}",
            mode.as_str(),
            h.capacity,
            if *closed {
                ", closed"
            } else if *publisher_alive {
                ""
            } else {
                ", no publisher"
            }
        ),
        _ => format!("{} bytes", h.capacity),
    }
}

pub(crate) fn info(name: &str, namespace: Option<&str>, as_json: bool) -> anyhow::Result<Outcome> {
    let name = shmbus::Name::with_namespace(name, namespace)?;
    let o = shmbus::inspect(&name)?;
    let mut out = io::stdout().lock();
    if as_json {
        let mut v = summary_json(&o);
        if let Some(h) = &o.header {
            v["layout_version"] = json!(h.layout_version);
            v["capacity"] = json!(h.capacity);
            v["creator_pid"] = json!(h.creator_pid);
            v["state"] = state_json(h);
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(Outcome::Done);
    }
    writeln!(out, "name:           {}", o.name.as_str())?;
    if let Some(ns) = o.name.namespace() {
        writeln!(out, "namespace:      {ns}")?;
    }
    writeln!(out, "object:         /dev/shm{}", o.name.os_name())?;
    writeln!(out, "size:           {} bytes", o.size)?;
    writeln!(out, "owner:          {}", Users::load().name(o.owner))?;
    writeln!(out, "mode:           {:04o}", o.mode)?;
    if let Some(p) = &o.problem {
        writeln!(out, "problem:        {p}")?;
    }
    let Some(h) = &o.header else {
        return Ok(Outcome::Done);
    };
    writeln!(out, "kind:           {}", h.kind)?;
    writeln!(out, "layout version: {}", h.layout_version)?;
    writeln!(out, "capacity:       {} bytes", h.capacity)?;
    writeln!(out, "creator pid:    {}", h.creator_pid)?;
    writeln!(out, "created:        {}", time_str(h.created))?;
    writeln!(out, "persistent:     {}", h.persistent)?;
    writeln!(out, "owner alive:    {}", alive_str(o.alive))?;
    match &h.state {
        LiveState::Channel {
            mode,
            max_message,
            max_subscribers,
            published,
            tail,
            subscribers,
            publisher_alive,
            closed,
        } => {
            writeln!(out, "mode:           {}", mode.as_str())?;
            writeln!(out, "max message:    {max_message} bytes")?;
            writeln!(out, "subscribers:    {subscribers} of {max_subscribers}")?;
            writeln!(out, "published:      {published} messages, {tail} bytes")?;
            writeln!(
                out,
                "publisher:      {}",
                if *publisher_alive { "alive" } else { "none" }
            )?;
            writeln!(out, "closed:         {closed}")?;
        }
        LiveState::Event {
            mode,
            set,
            waiters,
            raw,
        } => {
            writeln!(out, "mode:           {mode}")?;
            writeln!(out, "set:            {set}")?;
            writeln!(out, "waiters:        {waiters}")?;
            writeln!(out, "state word:     {raw:#010x}")?;
        }
        LiveState::Blackboard {
            version,
            len,
            writer,
            waiters,
            copies,
            writing,
        } => {
            writeln!(out, "version:        {version}")?;
            writeln!(out, "length:         {len} bytes")?;
            writeln!(out, "copies:         {copies}")?;
            writeln!(
                out,
                "writer slot:    {writer}{}",
                if *writing { " (writing)" } else { "" }
            )?;
            writeln!(out, "waiters:        {waiters}")?;
        }
        LiveState::KeyedBlackboard { copies, keys } => {
            writeln!(out, "copies:         {copies}")?;
            writeln!(out, "keys:           {}", keys.len())?;
            for k in keys {
                writeln!(
                    out,
                    "  {:?}: version {}, {} bytes{}{}",
                    k.key,
                    k.version,
                    k.len,
                    if k.writing { ", writing" } else { "" },
                    if k.waiters > 0 {
                        format!(", {} waiting", k.waiters)
                    } else {
                        String::new()
                    }
                )?;
            }
        }
        _ => {}
    }
    Ok(Outcome::Done)
}

pub(crate) fn gc(namespace: Option<&str>, dry_run: bool) -> anyhow::Result<Outcome> {
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut out = io::stdout().lock();
    for (name, reason) in shmbus::gc(namespace, dry_run)? {
        writeln!(out, "{verb} {} ({reason})", name.as_str())?;
    }
    Ok(Outcome::Done)
}

fn alive_str(alive: Option<bool>) -> &'static str {
    match alive {
        Some(true) => "yes",
        Some(false) => "no",
        None => "?",
    }
}

pub(crate) fn rm(names: &[String], opts: &Options) -> anyhow::Result<Outcome> {
    // Remove what exists even when some names fail; report each failure on its own line.
    let mut outcome = Outcome::Done;
    for name in names {
        if let Err(e) = Segment::remove_with(name, opts) {
            eprintln!("error: {e}");
            outcome = Outcome::Failed;
        }
    }
    Ok(outcome)
}

fn kind_str(o: &ObjectInfo) -> String {
    match &o.header {
        Some(h) => h.kind.to_string(),
        None => "?".to_owned(),
    }
}

fn summary_json(o: &ObjectInfo) -> Value {
    json!({
        "name": o.name.as_str(),
        "namespace": o.name.namespace(),
        "kind": o.header.as_ref().map(|h| h.kind.to_string()),
        "size": o.size,
        "owner": o.owner,
        "mode": format!("{:04o}", o.mode),
        "created": o.header.as_ref().map(|h| time_str(h.created)),
        "alive": o.alive,
        "persistent": o.header.as_ref().map(|h| h.persistent),
        "problem": o.problem,
    })
}

fn state_json(h: &HeaderInfo) -> Value {
    match &h.state {
        LiveState::Event {
            mode,
            set,
            waiters,
            raw,
        } => json!({"mode": mode.to_string(), "set": set, "waiters": waiters, "raw": raw}),
        LiveState::Blackboard {
            version,
            len,
            writer,
            waiters,
            copies,
            writing,
        } => json!({
            "version": version,
            "len": len,
            "writer_slot": writer,
            "waiters": waiters,
            "copies": copies,
            "writing": writing,
        }),
        LiveState::KeyedBlackboard { copies, keys } => json!({
            "copies": copies,
            "keys": keys.iter().map(|k| json!({
                "key": k.key,
                "version": k.version,
                "len": k.len,
                "writer_slot": k.writer,
                "waiters": k.waiters,
                "writing": k.writing,
            })).collect::<Vec<_>>(),
        }),
        LiveState::Channel {
            mode,
            max_message,
            max_subscribers,
            published,
            tail,
            subscribers,
            publisher_alive,
            closed,
        } => json!({
            "mode": mode.as_str(),
            "max_message": max_message,
            "max_subscribers": max_subscribers,
            "published": published,
            "bytes_published": tail,
            "subscribers": subscribers,
            "publisher_alive": publisher_alive,
            "closed": closed,
        }),
        _ => json!({}),
    }
}

fn time_str(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// uid → user name, from /etc/passwd (numbers when unknown).
struct Users(Vec<(u32, String)>);

impl Users {
    fn load() -> Users {
        let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        Users(
            text.lines()
                .filter_map(|line| {
                    let mut f = line.split(':');
                    let name = f.next()?;
                    let uid = f.nth(1)?.parse().ok()?;
                    Some((uid, name.to_owned()))
                })
                .collect(),
        )
    }

    fn name(&self, uid: u32) -> String {
        self.0
            .iter()
            .find(|(u, _)| *u == uid)
            .map_or_else(|| uid.to_string(), |(_, n)| n.clone())
    }
}
