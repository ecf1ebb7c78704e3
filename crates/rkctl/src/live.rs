//! `get -w`. One watch loop per source feeds a channel: it lists (a server
//! table), then watches from the list's resourceVersion with bookmarks,
//! resumes from the last version it saw when the server ends a watch, relists
//! on 410 Gone, and reports when the connection is lost and when it is back.
//! Two consumers: on a terminal, the live table (the pure `model` plus a thin
//! crossterm renderer that draws at most one frame per 33 ms, however many
//! events arrive); otherwise one kubectl-style line per event, forever.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use crossterm::{cursor, event, queue, style, terminal};
use futures::AsyncBufReadExt;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::client::{Ctx, Error, Result, TABLE};
use crate::get::{Cols, GetArgs, Include, Row, Shape, Source, Table, fetch_table_pages, paint_fn, print_objects};
use crate::model::{Change, Column, Input, Model, RowState};
use crate::printers::{RESET, now_secs, status_color, tabulate};

/// The shortest time between two frames (about 30 per second).
const FRAME: Duration = Duration::from_millis(33);

enum Ev {
    /// One page of a list (the initial one or a relist)…
    Page(usize, Table),
    /// …and the list is complete: what it did not name is gone.
    Listed(usize),
    Event(usize, &'static str, Row),
    Lost(usize, String),
    /// Connected again; `true` when the watch had expired and a relist
    /// was needed, `false` when it resumed where it stopped.
    Back(usize, bool),
}

fn event_type(s: &str) -> Option<&'static str> {
    ["ADDED", "MODIFIED", "DELETED"].into_iter().find(|t| *t == s)
}

/// Lists and watches one source forever, sending what happens.
async fn watch_source(ctx: Ctx, i: usize, src: Source, full: bool, chunk: u32, tx: mpsc::UnboundedSender<Ev>) {
    let mut lost = false;
    let mut backoff = Duration::from_millis(500);
    let include = if full { "&includeObject=Object" } else { "" };
    'relist: loop {
        // Pages go out as they come, so the list is never held whole as rows.
        let mut rv = String::new();
        let listed = fetch_table_pages(&ctx, &src, chunk, if full { Include::Object } else { Include::Metadata }, |t| {
            rv = t.rv.clone();
            let _ = tx.send(Ev::Page(i, t));
        })
        .await;
        if let Err(e) = listed {
            lost = true;
            let _ = tx.send(Ev::Lost(i, short(&e)));
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
            continue;
        }
        let _ = tx.send(Ev::Listed(i));
        if std::mem::take(&mut lost) {
            let _ = tx.send(Ev::Back(i, true));
        }
        loop {
            // Servers end watches after a while; we simply resume from `rv`.
            let url = src.list_url(&format!("&watch=true&allowWatchBookmarks=true&timeoutSeconds=1800&resourceVersion={rv}{include}"));
            let body = match ctx.stream(&url, TABLE).await {
                Ok(b) => b,
                Err(e) if e.status().is_some_and(|s| s.code == 410) => continue 'relist,
                Err(e) => {
                    lost = true;
                    let _ = tx.send(Ev::Lost(i, short(&e)));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            backoff = Duration::from_millis(500);
            if std::mem::take(&mut lost) {
                let _ = tx.send(Ev::Back(i, false));
            }
            let mut lines = body.lines();
            loop {
                use futures::StreamExt;
                let line = match lines.next().await {
                    Some(Ok(l)) => l,
                    // A broken stream: try to resume; a refused connection
                    // then reports the loss.
                    Some(Err(_)) | None => break,
                };
                let Ok(ev) = serde_json::from_str::<Value>(&line) else { continue };
                let obj = &ev["object"];
                match ev["type"].as_str().unwrap_or_default() {
                    "ERROR" if obj["code"] == 410 => continue 'relist,
                    "ERROR" => {
                        let _ = tx.send(Ev::Lost(i, obj["message"].as_str().unwrap_or("watch error").to_string()));
                        lost = true;
                        tokio::time::sleep(backoff).await;
                        continue 'relist;
                    }
                    "BOOKMARK" => {}
                    t => {
                        let Some(kind) = event_type(t) else { continue };
                        for r in obj["rows"].as_array().into_iter().flatten() {
                            let _ = tx.send(Ev::Event(i, kind, Row::from_event(r)));
                        }
                    }
                }
                if let Some(v) = obj["metadata"]["resourceVersion"].as_str().filter(|v| !v.is_empty()) {
                    rv = v.to_string();
                }
            }
        }
    }
}

/// An error in one line (for the status line).
fn short(e: &Error) -> String {
    let s = e.to_string();
    s.lines().next().unwrap_or_default().to_string()
}

pub async fn run(ctx: &Ctx, a: &GetArgs, srcs: Vec<Source>, with_kind: bool, tty: bool, color: bool) -> Result<()> {
    let fmt = a.output.clone().unwrap_or_default();
    let objects = !matches!(fmt.as_str(), "" | "wide");
    let (tx, rx) = mpsc::unbounded_channel();
    for (i, s) in srcs.iter().enumerate() {
        tokio::spawn(watch_source(ctx.clone(), i, s.clone(), objects || a.sort_by.is_some(), a.chunk_size, tx.clone()));
    }
    drop(tx);
    let shapes: Vec<Shape> = srcs.iter().map(|s| a.shape(s, with_kind)).collect();
    if tty && !objects {
        Screen::new(srcs, shapes, color, ctx.namespace.clone(), a.all_namespaces).run(rx).await
    } else {
        lines(a, &fmt, shapes, color, rx).await
    }
}

/// What the line printer knows about one source.
struct State {
    widths: Vec<usize>,
    cols: Vec<(String, i64)>,
    header: Vec<Column>,
    /// What was last printed per object, so that a relist prints only
    /// what really changed meanwhile.
    seen: HashMap<String, Vec<String>>,
    started: bool,
    /// The header goes out with the first row, as kubectl's does.
    headed: bool,
    /// While a list comes in page by page: whether it is the initial one,
    /// and the objects it named so far.
    listing: Option<(bool, std::collections::HashSet<String>)>,
}

/// Not a terminal: a line per event, as kubectl prints them, and never stop.
async fn lines(a: &GetArgs, fmt: &str, shapes: Vec<Shape>, color: bool, mut rx: mpsc::UnboundedReceiver<Ev>) -> Result<()> {
    let events = a.output_watch_events;
    // kubectl sizes the EVENT column for its longest word from the start.
    let widths = if events { vec!["MODIFIED".len() + 3] } else { Vec::new() };
    let mut st: Vec<State> = shapes
        .iter()
        .map(|_| State {
            widths: widths.clone(),
            cols: Vec::new(),
            header: Vec::new(),
            seen: HashMap::new(),
            started: false,
            headed: a.no_headers,
            listing: None,
        })
        .collect();
    let stdout = std::io::stdout();
    while let Some(ev) = rx.recv().await {
        let mut out = stdout.lock();
        match ev {
            Ev::Page(i, t) => {
                let s = &mut st[i];
                let shape = &shapes[i];
                // The first page of a list opens it; the first list is the initial one.
                let initial = !s.started;
                let (initial, listed) = s.listing.get_or_insert_with(|| (initial, std::collections::HashSet::new()));
                let initial = *initial;
                s.started = true;
                s.cols = t.cols.clone();
                s.header = shape.columns(&t.cols);
                let mut rows: Vec<Vec<String>> = Vec::new();
                let mut objs = Vec::new();
                for row in t.rows {
                    let input = shape.input(&t.cols, &row);
                    listed.insert(input.key.clone());
                    let old = s.seen.insert(input.key.clone(), input.cells.clone());
                    let kind = match old {
                        None => "ADDED",
                        Some(o) if o != input.cells => "MODIFIED",
                        Some(_) => continue,
                    };
                    if initial && a.watch_only {
                        continue;
                    }
                    objs.push((kind, row.object));
                    rows.push(with_event(events, kind, input.cells));
                }
                if objects_format(fmt) {
                    for (kind, o) in objs {
                        print_event_object(&mut out, fmt, events, kind, o, a.show_managed_fields)?;
                    }
                } else {
                    write_rows(&mut out, rows, s, color, events)?;
                }
            }
            Ev::Listed(i) => {
                let s = &mut st[i];
                let Some((_, listed)) = s.listing.take() else { continue };
                let gone: Vec<String> = s.seen.keys().filter(|k| !listed.contains(*k)).cloned().collect();
                let mut rows = Vec::new();
                for k in gone {
                    if let Some(c) = s.seen.remove(&k) {
                        rows.push(with_event(events, "DELETED", c));
                    }
                }
                if !objects_format(fmt) && !rows.is_empty() {
                    write_rows(&mut out, rows, s, color, events)?;
                }
            }
            Ev::Event(i, kind, row) => {
                let s = &mut st[i];
                let input = shapes[i].input(&s.cols, &row);
                if kind == "DELETED" {
                    s.seen.remove(&input.key);
                } else {
                    s.seen.insert(input.key.clone(), input.cells.clone());
                }
                if objects_format(fmt) {
                    print_event_object(&mut out, fmt, events, kind, row.object, a.show_managed_fields)?;
                } else {
                    let row = with_event(events, kind, input.cells);
                    write_rows(&mut out, vec![row], s, color, events)?;
                }
            }
            Ev::Lost(i, m) => {
                // A list cut short is started again from its first page.
                st[i].listing = None;
                eprintln!("watch interrupted ({m}); retrying")
            }
            Ev::Back(_, relisted) => eprintln!("{}", if relisted { "watch back (relisted)" } else { "watch back (resumed)" }),
        }
        out.flush()?;
    }
    Ok(())
}

fn objects_format(fmt: &str) -> bool {
    !matches!(fmt, "" | "wide")
}

fn with_event(events: bool, kind: &str, mut cells: Vec<String>) -> Vec<String> {
    if events {
        cells.insert(0, kind.to_string());
    }
    cells
}

fn write_rows(out: &mut impl Write, rows: Vec<Vec<String>>, s: &mut State, color: bool, events: bool) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut all = Vec::with_capacity(rows.len() + 1);
    if !std::mem::replace(&mut s.headed, true) {
        let mut h: Vec<String> = s.header.iter().map(|c| c.name.clone()).collect();
        if events {
            h.insert(0, "EVENT".into());
        }
        all.push(h);
    }
    all.extend(rows);
    let paint = paint_fn(color, &s.header);
    let shift = usize::from(events);
    let text = tabulate(&all, &mut s.widths, &|_, i, c| if i < shift { c.to_string() } else { paint(i - shift, c) });
    out.write_all(text.as_bytes())?;
    Ok(())
}

fn print_event_object(out: &mut impl Write, fmt: &str, events: bool, kind: &str, mut obj: Value, managed_fields: bool) -> Result<()> {
    if !managed_fields && let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    if events && matches!(fmt, "json" | "yaml") {
        let ev = serde_json::json!({"type": kind, "object": obj});
        let text = if fmt == "json" { crate::printers::to_json(&ev) } else { crate::printers::to_yaml(&ev) };
        out.write_all(text.as_bytes())?;
        return Ok(());
    }
    print_objects(out, fmt, vec![obj], true, true)?;
    if fmt == "yaml" {
        out.write_all(b"---\n")?;
    }
    Ok(())
}

/// Which columns fit in `width` and how wide each is, from the widest
/// cell of each column: columns go, highest priority first and then from the
/// right, never the first; what is still too wide is cut later, never wrapped.
pub fn layout(cols: &[Column], content: &[usize], width: usize) -> (Vec<usize>, Vec<usize>) {
    let w: Vec<usize> = cols.iter().enumerate().map(|(i, c)| c.name.chars().count().max(content.get(i).copied().unwrap_or(0))).collect();
    let mut kept: Vec<usize> = (0..cols.len()).collect();
    let total = |kept: &[usize]| kept.iter().map(|&i| (w[i] + 3).max(6)).sum::<usize>() - 3;
    while kept.len() > 1 && total(&kept) > width {
        let drop = (1..kept.len()).max_by_key(|&k| (cols[kept[k]].priority, k)).unwrap_or(1);
        kept.remove(drop);
    }
    let widths = kept.iter().map(|&i| (w[i] + 3).max(6)).collect();
    (kept, widths)
}

struct Conn {
    lost: Option<String>,
    back_at: Option<(Instant, bool)>,
}

struct Screen {
    srcs: Vec<Source>,
    shapes: Vec<Shape>,
    models: Vec<Option<(Cols, Model)>>,
    /// A list still arriving page by page: its columns and rows so far.
    pending: Vec<Option<(Cols, Vec<Input>)>>,
    conns: Vec<Conn>,
    color: bool,
    scope: String,
    start: Instant,
    frames: u64,
    events: u64,
}

/// Puts the terminal back however the view ends.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = terminal::disable_raw_mode();
        let mut o = std::io::stdout();
        let _ = queue!(o, cursor::Show, terminal::LeaveAlternateScreen);
        let _ = o.flush();
    }
}

enum Key {
    Quit,
    Redraw,
}

impl Screen {
    fn new(srcs: Vec<Source>, shapes: Vec<Shape>, color: bool, ns: String, all: bool) -> Screen {
        let n = srcs.len();
        let scope = if all { "all namespaces".to_string() } else { format!("namespace {ns}") };
        Screen {
            srcs,
            shapes,
            models: (0..n).map(|_| None).collect(),
            pending: (0..n).map(|_| None).collect(),
            conns: (0..n).map(|_| Conn { lost: None, back_at: None }).collect(),
            color,
            scope,
            start: Instant::now(),
            frames: 0,
            events: 0,
        }
    }

    fn ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn apply(&mut self, ev: Ev) {
        self.events += 1;
        let now = self.ms();
        match ev {
            Ev::Page(i, t) => {
                // Rows become inputs page by page, so a big list is never held
                // as rows and inputs at once.
                let shape = &self.shapes[i];
                let (cols, inputs) = self.pending[i].get_or_insert_with(Default::default);
                inputs.extend(t.rows.iter().map(|r| shape.input(&t.cols, r)));
                *cols = t.cols;
            }
            Ev::Listed(i) => {
                let Some((cols, inputs)) = self.pending[i].take() else { return };
                match &mut self.models[i] {
                    Some((_, m)) => m.resync(inputs, now),
                    slot => {
                        let mut m = Model::new(self.shapes[i].columns(&cols));
                        for inp in inputs {
                            m.upsert(inp, now, true);
                        }
                        *slot = Some((cols, m));
                    }
                }
            }
            Ev::Event(i, kind, row) => {
                if let Some((cols, m)) = &mut self.models[i] {
                    let input = self.shapes[i].input(cols, &row);
                    if kind == "DELETED" { m.remove(&input.key, now) } else { m.upsert(input, now, false) }
                }
            }
            Ev::Lost(i, msg) => {
                self.pending[i] = None;
                self.conns[i].lost = Some(msg)
            }
            Ev::Back(i, relisted) => {
                self.conns[i].lost = None;
                self.conns[i].back_at = Some((Instant::now(), relisted));
            }
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Ev>) -> Result<()> {
        let (ktx, mut keys) = mpsc::unbounded_channel();
        // crossterm's event reading blocks, so it gets a thread of its own.
        std::thread::spawn(move || {
            while let Ok(e) = event::read() {
                let k = match e {
                    event::Event::Key(k) if matches!(k.code, event::KeyCode::Char('q') | event::KeyCode::Esc) => Key::Quit,
                    event::Event::Key(k) if k.code == event::KeyCode::Char('c') && k.modifiers.contains(event::KeyModifiers::CONTROL) => Key::Quit,
                    event::Event::Resize(..) => Key::Redraw,
                    _ => continue,
                };
                if ktx.send(k).is_err() {
                    return;
                }
            }
        });
        let _restore = Restore;
        terminal::enable_raw_mode()?;
        let mut o = std::io::stdout();
        queue!(o, terminal::EnterAlternateScreen, cursor::Hide)?;
        o.flush()?;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut dirty = true;
        let mut last = Instant::now() - FRAME;
        loop {
            let due = tokio::time::Instant::from_std(last + FRAME);
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(ev) => {
                        self.apply(ev);
                        // Take everything already queued before drawing.
                        while let Ok(ev) = rx.try_recv() {
                            self.apply(ev);
                        }
                        dirty = true;
                    }
                    None => return Ok(()),
                },
                k = keys.recv() => match k {
                    Some(Key::Quit) | None => break,
                    Some(Key::Redraw) => dirty = true,
                },
                _ = tick.tick() => dirty = true,
                _ = tokio::time::sleep_until(due), if dirty => {
                    self.draw()?;
                    last = Instant::now();
                    dirty = false;
                }
            }
        }
        drop(_restore);
        if std::env::var_os("RKCTL_STATS").is_some() {
            let secs = self.start.elapsed().as_secs_f64();
            eprintln!("rkctl: {} events, {} frames in {secs:.1} s ({:.1} frames/s)", self.events, self.frames, self.frames as f64 / secs);
        }
        Ok(())
    }

    fn draw(&mut self) -> Result<()> {
        self.frames += 1;
        let (w, h) = terminal::size().unwrap_or((80, 24));
        let lines = self.render(w as usize, h as usize);
        let mut buf = Vec::with_capacity(16 * 1024);
        for (y, l) in lines.iter().enumerate() {
            queue!(buf, cursor::MoveTo(0, y as u16), style::Print(l), terminal::Clear(terminal::ClearType::UntilNewLine))?;
        }
        queue!(buf, terminal::Clear(terminal::ClearType::FromCursorDown))?;
        let mut o = std::io::stdout().lock();
        o.write_all(&buf)?;
        o.flush()?;
        Ok(())
    }

    /// The whole screen as lines (with colour codes when enabled).
    fn render(&mut self, width: usize, height: usize) -> Vec<String> {
        let (now, wall) = (self.ms(), now_secs());
        let body = height.saturating_sub(1);
        let mut out: Vec<String> = Vec::new();
        let (mut total, mut hidden) = (0, 0);
        let color = self.color;
        for slot in self.models.iter_mut() {
            let Some((_, m)) = slot else { continue };
            total += m.len();
            // Rows past the bottom of the screen are measured, not drawn;
            // one line stays free for saying how many are hidden.
            let room = body.saturating_sub(out.len() + usize::from(!out.is_empty()) + 2);
            let (rows, content) = m.view(now, wall, room);
            hidden += m.len().saturating_sub(rows.len());
            if rows.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.push(String::new());
            }
            let (kept, widths) = layout(&m.columns, &content, width);
            let header: Vec<String> = kept.iter().map(|&c| m.columns[c].name.clone()).collect();
            out.push(draw_line(&header, &[], &widths, width, color, None, &[]));
            let names: Vec<&str> = kept.iter().map(|&c| m.columns[c].name.as_str()).collect();
            for r in &rows {
                let cells: Vec<String> = kept.iter().map(|&c| r.cells.get(c).cloned().unwrap_or_default()).collect();
                let marks: Vec<Option<Change>> = kept.iter().map(|&c| r.marks.get(c).copied().flatten()).collect();
                out.push(draw_line(&cells, &marks, &widths, width, color, Some(r.state), &names));
            }
        }
        out.truncate(body);
        if hidden > 0 && out.len() < body {
            out.push(format!("… {hidden} more rows below (enlarge the terminal or narrow the query with -l)"));
        }
        while out.len() < body {
            out.push(String::new());
        }
        out.push(self.status_line(total, width));
        out
    }

    fn status_line(&self, rows: usize, width: usize) -> String {
        let kinds: Vec<&str> = self.srcs.iter().map(|s| s.res.plural.as_str()).collect();
        let lost = self.conns.iter().find_map(|c| c.lost.as_deref());
        let back = self.conns.iter().filter_map(|c| c.back_at).filter(|(t, _)| t.elapsed() < Duration::from_secs(5)).map(|(_, r)| r).max();
        let waiting = self.models.iter().any(Option::is_none);
        let (text, code) = match (lost, back) {
            (Some(m), _) => (format!("✗ connection lost: {m} — retrying"), "\x1b[1;37;41m"),
            (None, Some(relisted)) => {
                let how = if relisted { "relisted, the watch had expired" } else { "resumed where it stopped" };
                (format!("✓ connection back ({how}) — watching {} in {}", kinds.join(","), self.scope), "\x1b[1;30;42m")
            }
            _ if waiting => (format!("… listing {} in {}", kinds.join(","), self.scope), "\x1b[7m"),
            _ => (format!("● watching {} in {} — {rows} rows — q to quit", kinds.join(","), self.scope), "\x1b[7m"),
        };
        let text: String = text.chars().take(width).collect();
        if self.color { format!("{code}{text:<width$}{RESET}") } else { text }
    }
}

/// One table line: cells padded to `widths`, the change marker in the gap
/// after a cell, cut at the terminal width.
fn draw_line(
    cells: &[String],
    marks: &[Option<Change>],
    widths: &[usize],
    width: usize,
    color: bool,
    state: Option<RowState>,
    names: &[&str],
) -> String {
    let mut out = String::new();
    let mut col = 0;
    let row_code = match state {
        Some(RowState::New) => Some("\x1b[1;32m"),
        Some(RowState::Deleted(f)) if f < 0.5 => Some("\x1b[9;31m"),
        Some(RowState::Deleted(_)) => Some("\x1b[9;90m"),
        Some(RowState::Normal) => None,
        None => Some("\x1b[1m"),
    };
    for (i, c) in cells.iter().enumerate() {
        if col >= width {
            break;
        }
        let c: String = c.chars().map(|ch| if ch.is_control() { '?' } else { ch }).collect();
        let mark = marks.get(i).copied().flatten();
        let last = i + 1 == cells.len();
        let mut text = c.clone();
        if let Some(m) = mark {
            text.push(' ');
            text.push(m.symbol());
        }
        let pad = if last { 0 } else { widths[i].saturating_sub(text.chars().count()) };
        let room = width - col;
        let shown: String = text.chars().take(room).collect();
        let n = shown.chars().count();
        col += n;
        let code = if !color {
            None
        } else if let Some(m) = mark {
            let restarts = names.get(i).is_some_and(|n| *n == "RESTARTS");
            Some(match m {
                Change::Changed => "\x1b[1;33m",
                Change::Up if restarts => "\x1b[1;31m",
                Change::Up => "\x1b[1;32m",
                Change::Down => "\x1b[1;35m",
            })
        } else if state == Some(RowState::Normal) && names.get(i).is_some_and(|n| *n == "STATUS") {
            status_color(&c)
        } else {
            row_code
        };
        match code {
            Some(code) => out.push_str(&format!("{code}{shown}{RESET}")),
            None => out.push_str(&shown),
        }
        let pad = pad.min(width - col);
        out.extend(std::iter::repeat_n(' ', pad));
        col += pad;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(specs: &[(&str, i64)]) -> Vec<Column> {
        specs.iter().map(|(n, p)| Column { name: n.to_string(), priority: *p }).collect()
    }

    #[test]
    fn columns_drop_by_priority_then_from_the_right() {
        let c = cols(&[("NAME", 0), ("READY", 0), ("STATUS", 0), ("IP", 1), ("AGE", 0)]);
        let rows = [5, 3, 7, 8, 2];
        assert_eq!(layout(&c, &rows, 200).0, [0, 1, 2, 3, 4]);
        let (kept, widths) = layout(&c, &rows, 25);
        assert_eq!(kept, [0, 1, 2], "IP (priority 1) goes first, then AGE from the right");
        assert!(widths.iter().sum::<usize>() - 3 <= 25);
        assert_eq!(layout(&c, &rows, 3).0, [0], "the name column always stays");
    }

    #[test]
    fn lines_put_markers_in_the_gap_and_never_exceed_the_width() {
        let widths = [8, 10, 6];
        let cells = ["web-1", "Running", "3"].map(String::from);
        let marks = [None, Some(Change::Changed), Some(Change::Up)];
        let l = draw_line(&cells, &marks, &widths, 80, false, Some(RowState::Normal), &[]);
        assert_eq!(l, "web-1   Running Δ 3 ↑");
        let cut = draw_line(&cells, &marks, &widths, 12, false, Some(RowState::Normal), &[]);
        assert_eq!(cut.chars().count(), 12);
        assert_eq!(cut, "web-1   Runn");
    }
}
