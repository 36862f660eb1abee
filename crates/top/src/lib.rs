//! `pointsman top`: a full-screen view of a `pointsman serve` daemon's
//! guests, refreshed every second from its `GET /stats`, sortable, with
//! keys to pause, resume and stop the selected guest. The VMM never runs
//! this code: only the `top` subcommand reaches it.

pub mod app;
pub mod table;
mod ui;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use manager::client::Client;
use manager::routes::DEFAULT_GRACE_SECONDS;
use manager::ManagerError;

use crate::app::{App, Command, Key};

/// How often the view is refreshed.
pub const REFRESH: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum TopError {
    #[error(transparent)]
    Daemon(#[from] ManagerError),
    #[error("the terminal: {0}")]
    Terminal(#[from] std::io::Error),
}

/// The terminal in raw mode on its alternate screen, given back as it
/// was when this is dropped (ratatui's panic hook does so on a panic).
struct Screen {
    terminal: ratatui::DefaultTerminal,
}

impl Screen {
    fn enter() -> std::io::Result<Screen> {
        Ok(Screen {
            terminal: ratatui::try_init()?,
        })
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Runs until `q`, Esc or Ctrl-C.
pub fn run(socket: PathBuf) -> Result<(), TopError> {
    let client = Client::new(socket);
    // Asked before the screen is taken, so that a daemon that is not
    // there is reported as a plain line.
    let mut app = App::default();
    app.update(client.stats()?);
    let mut screen = Screen::enter()?;
    let mut next_refresh = Instant::now() + REFRESH;
    loop {
        screen.terminal.draw(|frame| ui::draw(frame, &app))?;
        let wait = next_refresh.saturating_duration_since(Instant::now());
        if event::poll(wait)? {
            let Event::Key(press) = event::read()? else {
                // A resize: drawn again at once.
                continue;
            };
            if press.kind != KeyEventKind::Press {
                continue;
            }
            let Some(key) = key_of(press.code, press.modifiers) else {
                continue;
            };
            match app.on_key(key) {
                Command::None => continue,
                Command::Quit => return Ok(()),
                command => app.message = act(&client, command),
            }
        }
        refresh(&client, &mut app);
        next_refresh = Instant::now() + REFRESH;
    }
}

fn refresh(client: &Client, app: &mut App) {
    match client.stats() {
        Ok(report) => app.update(report),
        Err(e) => app.message = format!("the daemon: {e}"),
    }
}

/// Carries out a pause, resume or stop; what happened, for the footer.
fn act(client: &Client, command: Command) -> String {
    let grace = Duration::from_secs(DEFAULT_GRACE_SECONDS);
    let (done, outcome) = match &command {
        Command::Pause(name) => (name, client.set_paused(name, true)),
        Command::Resume(name) => (name, client.set_paused(name, false)),
        Command::Stop(name) => (name, client.ask_stop(name, grace)),
        Command::None | Command::Quit => return String::new(),
    };
    let what = match command {
        Command::Pause(_) => "paused",
        Command::Resume(_) => "resumed",
        _ => "asked to stop",
    };
    match outcome {
        Ok(()) => format!("{done}: {what}"),
        Err(e) => format!("{done}: {e}"),
    }
}

fn key_of(code: KeyCode, modifiers: KeyModifiers) -> Option<Key> {
    Some(match code {
        KeyCode::Char('c') if modifiers.contains(KeyModifiers::CONTROL) => Key::Quit,
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Esc => Key::Quit,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        _ => return None,
    })
}
