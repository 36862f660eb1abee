//! Drawing one frame: a line of host totals, the guest table with the
//! selected row marked, and a footer of keys and the last message.

use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Row, Table, TableState};
use ratatui::Frame;

use crate::app::App;
use crate::table::{self, SortKey, HEADERS};

/// Column widths, as [`HEADERS`].
const WIDTHS: [u16; 10] = [20, 9, 5, 6, 6, 5, 13, 17, 17, 7];

pub fn draw(frame: &mut Frame<'_>, app: &App) {
    let [summary, body, keys, message] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(summary_line(app)), summary);
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let rows = app
        .report
        .guests
        .iter()
        .map(|guest| Row::new(table::cells(guest)));
    let widths = WIDTHS.map(Constraint::Length);
    let guests = Table::new(rows, widths)
        .header(Row::new(HEADERS).style(bold))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("> ");
    let mut state = TableState::default().with_selected(app.selected_index());
    frame.render_stateful_widget(guests, body, &mut state);
    frame.render_widget(Paragraph::new(keys_line(app)), keys);
    frame.render_widget(Paragraph::new(app.message.as_str()), message);
}

/// The host's totals: what is promised against what may be, and the
/// daemon's own use.
fn summary_line(app: &App) -> Line<'static> {
    let host = &app.report.host;
    let daemon = match (host.daemon_cpu_seconds, host.daemon_resident_memory_bytes) {
        (Some(cpu), Some(rss)) => {
            format!("  daemon {cpu:.1}s cpu {} rss", table::bytes(rss as f64))
        }
        _ => String::new(),
    };
    Line::from(format!(
        "pointsman top  {} guests  vcpus {}/{} (host {})  memory {}/{}{daemon}",
        app.report.guests.len(),
        host.used_cpus,
        host.limit_cpus,
        host.capacity_cpus,
        table::bytes(host.used_memory_bytes as f64),
        table::bytes(host.limit_memory_bytes as f64),
    ))
}

fn keys_line(app: &App) -> Line<'static> {
    let sorts: Vec<String> = SortKey::ALL
        .iter()
        .map(|(key, _, label)| format!("{key} {label}"))
        .collect();
    let order = if app.descending { "v" } else { "^" };
    Line::from(format!(
        "q quit  up/down j/k select  p pause  r resume  s stop  sort: {}  [by {} {order}]",
        sorts.join(" "),
        app.sort.label()
    ))
}
