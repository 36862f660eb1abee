//! What `top` shows and what a key press does, apart from the terminal:
//! the latest report sorted, the selected guest (kept by name across
//! refreshes and re-sorts), and the command a key asks for.

use manager::report::StatsReport;

use crate::table::{self, SortKey};

/// A key press, as far as `top` cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Up,
    Down,
    Home,
    End,
    /// Esc or Ctrl-C.
    Quit,
}

/// What the loop is to do after a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    None,
    Quit,
    Pause(String),
    Resume(String),
    Stop(String),
}

#[derive(Debug)]
pub struct App {
    pub report: StatsReport,
    pub sort: SortKey,
    pub descending: bool,
    /// The selected guest's name.
    pub selected: Option<String>,
    /// The last action's outcome or the daemon's error, for the footer.
    pub message: String,
}

impl Default for App {
    fn default() -> Self {
        App {
            report: StatsReport::default(),
            sort: SortKey::Cpu,
            descending: SortKey::Cpu.default_descending(),
            selected: None,
            message: String::new(),
        }
    }
}

impl App {
    /// Takes a new report, sorted; the selection stays on its guest, or
    /// goes to the first if that guest is gone.
    pub fn update(&mut self, report: StatsReport) {
        self.report = report;
        self.resort();
    }

    fn resort(&mut self) {
        table::sort(&mut self.report.guests, self.sort, self.descending);
        if self.selected_index().is_none() {
            self.selected = self.report.guests.first().map(|g| g.name.clone());
        }
    }

    pub fn selected_index(&self) -> Option<usize> {
        let name = self.selected.as_deref()?;
        self.report.guests.iter().position(|g| g.name == name)
    }

    fn select(&mut self, index: usize) {
        if let Some(guest) = self.report.guests.get(index) {
            self.selected = Some(guest.name.clone());
        }
    }

    pub fn on_key(&mut self, key: Key) -> Command {
        let last = self.report.guests.len().saturating_sub(1);
        let at = self.selected_index().unwrap_or(0);
        let selected = || self.selected.clone();
        match key {
            Key::Quit | Key::Char('q') => return Command::Quit,
            Key::Up | Key::Char('k') => self.select(at.saturating_sub(1)),
            Key::Down | Key::Char('j') => self.select((at + 1).min(last)),
            Key::Home => self.select(0),
            Key::End => self.select(last),
            Key::Char('p') => return selected().map_or(Command::None, Command::Pause),
            Key::Char('r') => return selected().map_or(Command::None, Command::Resume),
            Key::Char('s') => return selected().map_or(Command::None, Command::Stop),
            Key::Char(c) => {
                if let Some(sort) = SortKey::from_key(c) {
                    // The same key again turns the order round.
                    self.descending = if sort == self.sort {
                        !self.descending
                    } else {
                        sort.default_descending()
                    };
                    self.sort = sort;
                    self.resort();
                }
            }
        }
        Command::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use manager::report::GuestStats;

    fn report(names: &[&str]) -> StatsReport {
        StatsReport {
            guests: names
                .iter()
                .map(|n| GuestStats {
                    name: (*n).into(),
                    ..GuestStats::default()
                })
                .collect(),
            ..StatsReport::default()
        }
    }

    #[test]
    fn keys_move_the_selection_and_ask_for_actions() {
        let mut app = App::default();
        assert_eq!(app.on_key(Key::Char('p')), Command::None);
        app.update(report(&["b", "a", "c"]));
        // Every CPU figure is equal: by name.
        assert_eq!(app.selected.as_deref(), Some("a"));
        assert_eq!(app.on_key(Key::Up), Command::None);
        assert_eq!(app.selected.as_deref(), Some("a"));
        app.on_key(Key::Char('j'));
        app.on_key(Key::Down);
        app.on_key(Key::Down);
        assert_eq!(app.selected.as_deref(), Some("c"));
        assert_eq!(app.on_key(Key::Char('p')), Command::Pause("c".into()));
        assert_eq!(app.on_key(Key::Char('r')), Command::Resume("c".into()));
        assert_eq!(app.on_key(Key::Char('s')), Command::Stop("c".into()));
        // Sorting by name, then the other way round: the selection follows
        // its guest.
        app.on_key(Key::Char('n'));
        assert_eq!((app.sort, app.descending), (SortKey::Name, false));
        app.on_key(Key::Char('n'));
        assert!(app.descending);
        assert_eq!(app.selected_index(), Some(0));
        app.on_key(Key::End);
        assert_eq!(app.selected.as_deref(), Some("a"));
        // Its guest gone, the selection goes to the first.
        app.update(report(&["b", "c"]));
        assert_eq!(app.selected.as_deref(), Some("c"));
        assert_eq!(app.on_key(Key::Char('q')), Command::Quit);
        assert_eq!(app.on_key(Key::Quit), Command::Quit);
    }
}
