//! keygate's own log lines (its `tracing` events; the access log writes its lines itself, in the
//! same shapes): text or JSON, each line written during a request naming that request's id.
//!
//! The id is read from the request's scope ([`crate::request_scope`]) only when a line is
//! written, and printed where a `tracing` span of the request used to print it: `request{id=…}: `
//! in text, `"span":{"id":…,"name":"request"}` in JSON, so the lines read as they did.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::{
    EnvFilter,
    fmt::{
        FmtContext, FormatEvent, FormatFields, MakeWriter,
        format::{self, JsonFields, Writer},
        time::{FormatTime, SystemTime},
    },
    registry::LookupSpan,
};

use crate::request_scope::current_id;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-12-07T08:12:42.123456Z  INFO request{id=…}: target: message field=value`, with
    /// colours when `ansi`.
    Text {
        /// Colour the level and the request (for a terminal).
        ansi: bool,
    },
    /// One JSON object per line, as `tracing-subscriber`'s JSON format writes it, with the
    /// request as `"span":{"id":…,"name":"request"}`.
    Json,
}

/// The subscriber for keygate's log lines: events `filter` lets through, in `format`, to
/// `writer`. The `keygate` binary installs it for the process; a test may install it for a
/// thread.
pub fn log_subscriber<W>(filter: EnvFilter, format: LogFormat, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Text { ansi } => Box::new(
            builder
                .with_ansi(ansi)
                // The time and the level are written here, before the request.
                .event_format(Text { rest: format::format().without_time().with_level(false) })
                .finish(),
        ),
        LogFormat::Json => Box::new(
            builder
                .fmt_fields(JsonFields::new())
                .event_format(Json { line: format::format().json().with_current_span(false).with_span_list(false) })
                .finish(),
        ),
    }
}

/// Text lines: the time, the level and the request here; the target and the fields by `rest`.
struct Text<F> {
    rest: F,
}

impl<S, N, F> FormatEvent<S, N> for Text<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let ansi = writer.has_ansi_escapes();
        let paint = |code: &'static str| if ansi { (code, "\x1b[0m") } else { ("", "") };
        let (on, off) = paint("\x1b[2m");
        write!(writer, "{on}")?;
        SystemTime.format_time(&mut writer)?;
        write!(writer, "{off} ")?;
        let (level, colour) = level_text(event.metadata().level());
        let (on, off) = paint(colour);
        write!(writer, "{on}{level}{off} ")?;
        if let Some(id) = current_id() {
            let (on, off) = paint("\x1b[1m");
            write!(writer, "{on}request{off}{{id={id}}}: ")?;
        }
        self.rest.format_event(ctx, writer, event)
    }
}

/// A level as `tracing-subscriber` prints it (five columns) and its colour.
fn level_text(level: &Level) -> (&'static str, &'static str) {
    match *level {
        Level::TRACE => ("TRACE", "\x1b[35m"),
        Level::DEBUG => ("DEBUG", "\x1b[34m"),
        Level::INFO => (" INFO", "\x1b[32m"),
        Level::WARN => (" WARN", "\x1b[33m"),
        Level::ERROR => ("ERROR", "\x1b[31m"),
    }
}

/// JSON lines: `line` writes the object, and the request is added as its last member.
struct Json<F> {
    line: F,
}

impl<S, N, F> FormatEvent<S, N> for Json<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let Some(id) = current_id() else {
            return self.line.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.line.format_event(ctx, Writer::new(&mut line), event)?;
        // The object is one line ending in `}`; a request id never needs escaping (it is
        // keygate's own, or a proxy's of letters, digits and `-_.:`).
        let Some(end) = line.rfind('}') else {
            return writer.write_str(&line);
        };
        writeln!(writer, "{},\"span\":{{\"id\":\"{id}\",\"name\":\"request\"}}}}", &line[..end])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::{RequestId, request_scope::in_request};

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf-8")
        }
    }

    /// Writes one warning outside any request and one inside request `id`, with `format`.
    async fn two_lines(format: LogFormat, id: RequestId) -> Vec<String> {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = log_subscriber(EnvFilter::new("info"), format, move || writer.clone());
        let _guard = tracing::subscriber::set_default(subscriber);
        tracing::warn!(n = 3, "outside");
        in_request(id, async { tracing::warn!(n = 4, "inside") }).await;
        lines.text().lines().map(str::to_owned).collect()
    }

    #[tokio::test]
    async fn a_text_line_names_the_request_it_was_written_in_where_a_span_would() {
        let id = RequestId::Own { prefix: 0x1f2e_3d4c, n: 0x2a };
        let lines = two_lines(LogFormat::Text { ansi: false }, id).await;
        assert_eq!(lines.len(), 2, "{lines:?}");
        let (time, rest) = lines[1].split_once(' ').expect("time");
        assert!(time.ends_with('Z') && time.len() == "2026-12-07T08:12:42.123456Z".len(), "{time}");
        assert_eq!(rest, " WARN request{id=1f2e3d4c-2a}: keygate_web::log_lines::tests: inside n=4");
        assert!(lines[0].ends_with(" WARN keygate_web::log_lines::tests: outside n=3"), "{}", lines[0]);
    }

    #[tokio::test]
    async fn a_json_line_carries_the_request_as_its_span() {
        let id = RequestId::given(b"edge-7:a.b_c").expect("id");
        let lines = two_lines(LogFormat::Json, id).await;
        let parsed: Vec<serde_json::Value> =
            lines.iter().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[1]["span"], serde_json::json!({ "id": "edge-7:a.b_c", "name": "request" }));
        assert_eq!(parsed[1]["fields"], serde_json::json!({ "message": "inside", "n": 4 }));
        assert_eq!(
            (parsed[1]["level"].as_str(), parsed[1]["target"].as_str()),
            (Some("WARN"), Some("keygate_web::log_lines::tests"))
        );
        assert!(parsed[0].get("span").is_none(), "a line outside a request names none: {}", lines[0]);
    }
}
