//! The live table as data, with no terminal and no clock of its own: rows
//! keyed by namespace/name, kept in a stable order; each update is diffed
//! against the row it replaces so that the view can mark what changed.
//! Times are milliseconds given by the caller, which makes every rule here a
//! plain unit test: new rows are highlighted, changed cells carry Δ (or ↑/↓
//! when a number such as RESTARTS or a READY count moved) for a few seconds,
//! deleted rows fade and then go, AGE is computed from the creation time so
//! it ticks between events.

use crate::printers::human_duration;

/// How long a new row, a changed cell or a deleted row stays marked.
pub const HIGHLIGHT_MS: u64 = 4000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Changed,
    Up,
    Down,
}

impl Change {
    pub fn symbol(self) -> char {
        match self {
            Change::Changed => 'Δ',
            Change::Up => '↑',
            Change::Down => '↓',
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub priority: i64,
}

/// A row as the data source hands it over.
#[derive(Clone, Debug, PartialEq)]
pub struct Input {
    pub key: String,
    pub cells: Vec<String>,
    /// Creation time in Unix seconds, for a ticking AGE.
    pub created: Option<i64>,
}

#[derive(Debug)]
struct Row {
    input: Input,
    added_at: Option<u64>,
    deleted_at: Option<u64>,
    /// Per cell; empty until something changes (most rows never do).
    marks: Vec<Option<(Change, u64)>>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RowState {
    Normal,
    New,
    /// Deleted; the fraction of the fade already done (0 to 1).
    Deleted(f32),
}

/// One row as it should be drawn now.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewRow {
    pub cells: Vec<String>,
    pub marks: Vec<Option<Change>>,
    pub state: RowState,
}

#[derive(Debug, Default)]
pub struct Model {
    pub columns: Vec<Column>,
    rows: Vec<Row>,
    age_col: Option<usize>,
}

/// The number a cell starts with: `3`, `1/2` (ready count), `2 (5s ago)`.
fn leading_number(s: &str) -> Option<i64> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

fn diff(old: &str, new: &str) -> Option<Change> {
    if old == new {
        return None;
    }
    Some(match (leading_number(old), leading_number(new)) {
        (Some(a), Some(b)) if b > a => Change::Up,
        (Some(a), Some(b)) if b < a => Change::Down,
        _ => Change::Changed,
    })
}

impl Model {
    pub fn new(columns: Vec<Column>) -> Model {
        let age_col = columns.iter().position(|c| c.name.eq_ignore_ascii_case("age"));
        Model { columns, rows: Vec::new(), age_col }
    }

    pub fn len(&self) -> usize {
        self.rows.iter().filter(|r| r.deleted_at.is_none()).count()
    }

    /// An added or modified object. `initial` rows (from the first list) are
    /// not highlighted: only what changes while watching is.
    pub fn upsert(&mut self, input: Input, now: u64, initial: bool) {
        match self.rows.binary_search_by(|r| r.input.key.as_str().cmp(&input.key)) {
            Ok(i) => {
                let row = &mut self.rows[i];
                if row.deleted_at.take().is_some() {
                    // Deleted and created again: a new object with the same name.
                    row.added_at = Some(now);
                    row.marks = Vec::new();
                } else {
                    for (c, new) in input.cells.iter().enumerate() {
                        if Some(c) == self.age_col {
                            continue;
                        }
                        if let Some(ch) = diff(row.input.cells.get(c).map_or("", String::as_str), new) {
                            if row.marks.len() < input.cells.len() {
                                row.marks.resize(input.cells.len(), None);
                            }
                            row.marks[c] = Some((ch, now));
                        }
                    }
                }
                row.input = input;
            }
            Err(i) => {
                self.rows.insert(i, Row { input, added_at: (!initial).then_some(now), deleted_at: None, marks: Vec::new() });
            }
        }
    }

    /// A deleted object: it fades, then disappears.
    pub fn remove(&mut self, key: &str, now: u64) {
        if let Ok(i) = self.rows.binary_search_by(|r| r.input.key.as_str().cmp(key)) {
            self.rows[i].deleted_at.get_or_insert(now);
        }
    }

    /// A full list after a relist: rows not in it were deleted meanwhile,
    /// the others are diffed like updates, so nothing is lost or doubled.
    pub fn resync(&mut self, inputs: Vec<Input>, now: u64) {
        let mut keep: Vec<&str> = inputs.iter().map(|i| i.key.as_str()).collect();
        keep.sort_unstable();
        let gone: Vec<String> = self
            .rows
            .iter()
            .filter(|r| r.deleted_at.is_none() && keep.binary_search(&r.input.key.as_str()).is_err())
            .map(|r| r.input.key.clone())
            .collect();
        for k in gone {
            self.remove(&k, now);
        }
        for i in inputs {
            let unchanged = self
                .rows
                .binary_search_by(|r| r.input.key.as_str().cmp(&i.key))
                .is_ok_and(|j| self.rows[j].deleted_at.is_none() && self.rows[j].input == i);
            if !unchanged {
                self.upsert(i, now, false);
            }
        }
    }

    /// The first `limit` rows to draw at `now` (`wall` is the Unix time for
    /// AGE), and the widest text of each column over all rows, so columns
    /// stay put however the view is scrolled or cut. Only what is drawn is
    /// copied, which keeps frames cheap with many thousands of rows. Expired
    /// marks and fully faded rows are dropped here.
    pub fn view(&mut self, now: u64, wall: i64, limit: usize) -> (Vec<ViewRow>, Vec<usize>) {
        self.rows.retain(|r| r.deleted_at.is_none_or(|d| now < d + HIGHLIGHT_MS));
        let fresh = |t: u64| now < t + HIGHLIGHT_MS;
        let mut widths = vec![0; self.columns.len()];
        let mut out = Vec::with_capacity(limit.min(self.rows.len()));
        for (n, r) in self.rows.iter_mut().enumerate() {
            let age = match (self.age_col, r.input.created) {
                (Some(c), Some(created)) if c < r.input.cells.len() => Some((c, human_duration(wall - created))),
                _ => None,
            };
            for (i, c) in r.input.cells.iter().enumerate().take(widths.len()) {
                let w = match &age {
                    Some((a, text)) if *a == i => text.chars().count(),
                    _ => c.chars().count(),
                };
                widths[i] = widths[i].max(w);
            }
            if n >= limit {
                continue;
            }
            for m in r.marks.iter_mut() {
                if m.is_some_and(|(_, t)| !fresh(t)) {
                    *m = None;
                }
            }
            let mut cells = r.input.cells.clone();
            if let Some((c, text)) = age {
                cells[c] = text;
            }
            let state = match (r.deleted_at, r.added_at) {
                (Some(d), _) => RowState::Deleted((now - d) as f32 / HIGHLIGHT_MS as f32),
                (None, Some(a)) if fresh(a) => RowState::New,
                _ => RowState::Normal,
            };
            let marks = (0..cells.len()).map(|c| r.marks.get(c).copied().flatten().map(|(ch, _)| ch)).collect();
            out.push(ViewRow { cells, marks, state });
        }
        (out, widths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> Vec<Column> {
        ["Name", "Ready", "Status", "Restarts", "Age"].iter().map(|n| Column { name: n.to_string(), priority: 0 }).collect()
    }

    fn row(name: &str, ready: &str, status: &str, restarts: &str) -> Input {
        Input {
            key: format!("default/{name}"),
            cells: vec![name.into(), ready.into(), status.into(), restarts.into(), "1s".into()],
            created: Some(1000),
        }
    }

    #[test]
    fn changed_cells_get_markers_that_expire() {
        let mut m = Model::new(cols());
        m.upsert(row("a", "0/1", "Pending", "0"), 0, true);
        m.upsert(row("a", "1/1", "Running", "2"), 100, false);
        let v = m.view(200, 1065, usize::MAX).0;
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].marks, vec![None, Some(Change::Up), Some(Change::Changed), Some(Change::Up), None]);
        assert_eq!(v[0].state, RowState::Normal, "a row from the initial list is not new");
        assert_eq!(v[0].cells[4], "65s", "AGE comes from the creation time");
        m.upsert(row("a", "0/1", "Running", "2"), 300, false);
        assert_eq!(m.view(400, 1065, usize::MAX).0[0].marks[1], Some(Change::Down));
        let later = m.view(100 + HIGHLIGHT_MS + 1, 1065, usize::MAX).0;
        assert_eq!(later[0].marks, vec![None, Some(Change::Down), None, None, None], "older marks expire first");
        assert!(m.view(300 + HIGHLIGHT_MS, 1065, usize::MAX).0[0].marks.iter().all(Option::is_none));
    }

    #[test]
    fn new_rows_are_highlighted_and_sorted_in_place() {
        let mut m = Model::new(cols());
        m.upsert(row("b", "1/1", "Running", "0"), 0, true);
        m.upsert(row("a", "0/1", "Pending", "0"), 10, false);
        m.upsert(row("c", "0/1", "Pending", "0"), 10, false);
        let v = m.view(20, 1001, usize::MAX).0;
        let names: Vec<&str> = v.iter().map(|r| r.cells[0].as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(v.iter().map(|r| r.state).collect::<Vec<_>>(), [RowState::New, RowState::Normal, RowState::New]);
        assert_eq!(m.view(10 + HIGHLIGHT_MS, 1001, usize::MAX).0[0].state, RowState::Normal);
    }

    #[test]
    fn deleted_rows_fade_then_go_and_can_come_back() {
        let mut m = Model::new(cols());
        m.upsert(row("a", "1/1", "Running", "0"), 0, true);
        m.remove("default/a", 1000);
        assert_eq!(m.len(), 0);
        assert_eq!(m.view(1000 + HIGHLIGHT_MS / 2, 0, usize::MAX).0[0].state, RowState::Deleted(0.5));
        m.upsert(row("a", "0/1", "Pending", "0"), 2000, false);
        assert_eq!(m.view(2001, 0, usize::MAX).0[0].state, RowState::New, "re-created under the same name");
        m.remove("default/a", 3000);
        assert!(m.view(3000 + HIGHLIGHT_MS, 0, usize::MAX).0.is_empty());
    }

    #[test]
    fn views_copy_only_what_is_drawn_but_measure_every_row() {
        let mut m = Model::new(cols());
        m.upsert(row("a", "1/1", "Running", "0"), 0, true);
        m.upsert(row("bbbbbbbbbb", "1/1", "CrashLoopBackOff", "12"), 0, true);
        let (rows, widths) = m.view(0, 1001, 1);
        assert_eq!(rows.len(), 1);
        assert_eq!(widths, [10, 3, 16, 2, 2], "the hidden row still sets the widths; AGE as shown (1s)");
    }

    #[test]
    fn resync_after_relist_neither_loses_nor_doubles_rows() {
        let mut m = Model::new(cols());
        m.upsert(row("a", "1/1", "Running", "0"), 0, true);
        m.upsert(row("b", "1/1", "Running", "0"), 0, true);
        // While disconnected: b was deleted, c created, a restarted.
        m.resync(vec![row("a", "1/1", "Running", "1"), row("c", "0/1", "Pending", "0")], 500);
        let v = m.view(600, 1001, usize::MAX).0;
        let names: Vec<&str> = v.iter().map(|r| r.cells[0].as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(v[0].marks[3], Some(Change::Up));
        assert!(matches!(v[1].state, RowState::Deleted(_)));
        assert_eq!(v[2].state, RowState::New);
        assert_eq!(m.len(), 2);
        // The same list again changes nothing.
        m.resync(vec![row("a", "1/1", "Running", "1"), row("c", "0/1", "Pending", "0")], 700);
        assert_eq!(m.view(800, 1001, usize::MAX).0.len(), 3);
        assert_eq!(m.len(), 2);
    }
}
