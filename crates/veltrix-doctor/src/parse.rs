//! Reading a client configuration file into entries that keep their place in
//! the text: Java `.properties` (which librdkafka's tools read too) and JSON
//! objects.
//!
//! Every entry keeps the byte ranges of its key and value, so a diagnostic can
//! point at the offending text, and the range of the whole entry, so a fix can
//! replace or delete it. The readers never stop at a problem they can step
//! over: a `.properties` file has no syntax errors (any line is a key and a
//! value, as `java.util.Properties` reads it), and a JSON file is read up to
//! its first syntax error, which is reported with its place.

use std::ops::Range;

/// How deeply JSON objects may nest before the reader gives up: client
/// configurations are flat or nearly so, and a bound keeps a hostile file from
/// exhausting the stack.
pub const JSON_DEPTH_MAX: usize = 16;

/// The syntax of a configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `key=value` lines, as `java.util.Properties` reads them.
    Properties,
    /// A JSON object; nested objects join their keys with `.`.
    Json,
}

impl Format {
    /// `properties` or `json`, as printed.
    pub fn name(self) -> &'static str {
        match self {
            Format::Properties => "properties",
            Format::Json => "json",
        }
    }

    /// The format a file of this name and text is in: `.json` files and text
    /// starting with `{` are JSON, everything else is `.properties`.
    pub fn detect(path: &str, source: &str) -> Format {
        if path.to_ascii_lowercase().ends_with(".json") || source.trim_start().starts_with('{') {
            Format::Json
        } else {
            Format::Properties
        }
    }
}

/// What kind of JSON value an entry had; `.properties` values are all text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Text: every `.properties` value, and JSON strings.
    Text,
    /// A JSON number.
    Number,
    /// A JSON `true` or `false`.
    Bool,
    /// A JSON `null`.
    Null,
    /// A JSON array: no client setting the linter reads is one.
    Array,
}

/// One `key = value` of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key, unescaped; nested JSON keys joined with `.`.
    pub key: String,
    /// Where the key is (for JSON, the innermost key's string, quotes included).
    pub key_span: Range<usize>,
    /// The value, unescaped, without surrounding whitespace.
    pub value: String,
    /// Where the value is (for a JSON string, quotes included).
    pub value_span: Range<usize>,
    /// The value's JSON type.
    pub kind: ValueKind,
    /// From the key's start to the value's end: what a fix replaces.
    pub span: Range<usize>,
    /// What deleting the entry removes: its whole line with the line break for
    /// `.properties`, the member and one separating comma for JSON.
    pub delete_span: Range<usize>,
}

/// A syntax error: what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// What the reader expected.
    pub message: String,
    /// Where it gave up.
    pub span: Range<usize>,
}

/// A file read into entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedFile {
    /// The syntax it was read as.
    pub format: Format,
    /// Every entry in file order, duplicates included.
    pub entries: Vec<Entry>,
    /// Where a new entry goes: the end of a `.properties` file, after the last
    /// member of a JSON object.
    pub insert_at: usize,
    /// What goes before a new entry at `insert_at` (a line break, a comma and
    /// the indentation of the other members).
    pub insert_prefix: String,
    /// What goes after a new entry at `insert_at`.
    pub insert_suffix: String,
    /// The first syntax error, if any; entries before it are kept.
    pub error: Option<SyntaxError>,
}

impl ParsedFile {
    /// Reads `source` as `format`.
    pub fn parse(source: &str, format: Format) -> ParsedFile {
        match format {
            Format::Properties => parse_properties(source),
            Format::Json => parse_json(source),
        }
    }

    /// `key` and `value` written as an entry of this file's syntax: `key=value`,
    /// or `"key": value` with `value` quoted unless it is a JSON boolean or
    /// number.
    pub fn entry_text(&self, key: &str, value: &str) -> String {
        match self.format {
            Format::Properties => format!("{}={}", escape_properties_key(key), value),
            Format::Json => {
                let is_bare = value == "true" || value == "false" || value.parse::<i64>().is_ok();
                if is_bare {
                    format!("{}: {value}", json_string(key))
                } else {
                    format!("{}: {}", json_string(key), json_string(value))
                }
            }
        }
    }
}

/// `key` with the characters that would end a `.properties` key escaped.
fn escape_properties_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        if matches!(c, '=' | ':' | ' ' | '\t' | '\\' | '#' | '!') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

// ---------------------------------------------------------------------------
// .properties

/// Whitespace as `java.util.Properties` counts it between and around keys.
fn is_properties_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

/// The natural lines of `source`: each line's content range and the range
/// including its terminator (`\n`, `\r\n` or `\r`).
fn natural_lines(source: &str) -> Vec<(Range<usize>, Range<usize>)> {
    let bytes = source.as_bytes();
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                lines.push((start..i, start..i + 1));
                start = i + 1;
            }
            b'\r' => {
                let end = if bytes.get(i + 1) == Some(&b'\n') { i + 2 } else { i + 1 };
                lines.push((start..i, start..end));
                start = end;
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    if start < bytes.len() {
        lines.push((start..bytes.len(), start..bytes.len()));
    }
    lines
}

/// Reads a `.properties` file as `java.util.Properties::load` does: blank
/// lines and lines starting with `#` or `!` are skipped; a line ending in an
/// odd number of backslashes continues on the next (whose leading whitespace
/// is dropped); the key ends at the first unescaped `=`, `:` or whitespace,
/// and one `=` or `:` with whitespace around it separates it from the value.
/// Values are trimmed, as the clients trim them before use.
fn parse_properties(source: &str) -> ParsedFile {
    let lines = natural_lines(source);
    let mut entries = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let (content, _) = lines[i].clone();
        let text = &source[content.clone()];
        let trimmed = text.trim_start_matches(is_properties_space);
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
            i += 1;
            continue;
        }
        // Gather the logical line: characters with their offsets, without the
        // continuation backslashes, line breaks and continuation indentation.
        let mut chars: Vec<(char, usize)> = Vec::new();
        let first = i;
        let mut skip_leading = true;
        loop {
            let (content, _) = lines[i].clone();
            let line = &source[content.clone()];
            let trailing = line.bytes().rev().take_while(|&b| b == b'\\').count();
            let continues = trailing % 2 == 1 && i + 1 < lines.len();
            let keep = if continues { line.len() - 1 } else { line.len() };
            for (off, c) in line[..keep].char_indices() {
                if skip_leading && is_properties_space(c) {
                    continue;
                }
                skip_leading = false;
                chars.push((c, content.start + off));
            }
            if !continues {
                break;
            }
            i += 1;
            skip_leading = true;
        }
        let last = i;
        i += 1;
        if let Some(entry) = properties_entry(&chars, lines[first].1.start..lines[last].1.end) {
            entries.push(entry);
        }
    }
    // A new line goes after the last one: before the file's final line break
    // (so that it reads as a line of its own wherever it is shown), in the
    // file's own line-break style.
    let newline = ["\r\n", "\n", "\r"].into_iter().find(|nl| source.ends_with(nl));
    let (insert_at, insert_prefix, insert_suffix) = match newline {
        Some(nl) => (source.len() - nl.len(), nl.to_owned(), String::new()),
        None if source.is_empty() => (0, String::new(), "\n".to_owned()),
        None => (source.len(), "\n".to_owned(), String::new()),
    };
    let error = entries
        .iter()
        .find_map(|e| malformed_unicode_escape(source, e.delete_span.clone()));
    ParsedFile {
        format: Format::Properties,
        entries,
        insert_at,
        insert_prefix,
        insert_suffix,
        error,
    }
}

/// The first `\u` in `range` not followed by four hex digits: Java's
/// `Properties.load` throws on it ("Malformed \uxxxx encoding"), so the
/// client never starts.
fn malformed_unicode_escape(source: &str, range: Range<usize>) -> Option<SyntaxError> {
    let text = source.get(range.clone())?;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        // A backslash escapes the next character, a backslash included.
        if bytes.get(i + 1) == Some(&b'u') {
            let hex = text.get(i + 2..i + 6).unwrap_or("");
            if hex.len() < 4 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                let at = range.start + i;
                let end = (i + 2 + hex.bytes().take_while(u8::is_ascii_hexdigit).count()).min(bytes.len());
                return Some(SyntaxError {
                    message: "a `\\u` escape needs four hex digits".to_owned(),
                    span: at..range.start + end,
                });
            }
        }
        i += 2;
    }
    None
}

/// One logical line's key and value. `line` is the range of its natural
/// lines, terminators included.
fn properties_entry(chars: &[(char, usize)], line: Range<usize>) -> Option<Entry> {
    let end_of = |idx: usize| chars.get(idx).map(|&(c, off)| off + c.len_utf8());
    let mut key = String::new();
    let mut pos = 0;
    let key_start = chars.first()?.1;
    let mut key_end = key_start;
    while pos < chars.len() {
        let (c, _) = chars[pos];
        if c == '\\' {
            let (decoded, used) = unescape(&chars[pos + 1..]);
            key.push_str(&decoded);
            pos += 1 + used;
            key_end = end_of(pos - 1)?;
            continue;
        }
        if c == '=' || c == ':' || is_properties_space(c) {
            break;
        }
        key.push(c);
        key_end = end_of(pos)?;
        pos += 1;
    }
    // The separator: whitespace, at most one `=` or `:`, whitespace.
    while pos < chars.len() && is_properties_space(chars[pos].0) {
        pos += 1;
    }
    if pos < chars.len() && matches!(chars[pos].0, '=' | ':') {
        pos += 1;
    }
    while pos < chars.len() && is_properties_space(chars[pos].0) {
        pos += 1;
    }
    let mut value = String::new();
    // Offsets of each decoded character's last source byte, to trim the span
    // along with the value.
    let mut value_ends: Vec<usize> = Vec::new();
    let value_start = chars.get(pos).map_or(key_end, |&(_, off)| off);
    while pos < chars.len() {
        let (c, _) = chars[pos];
        if c == '\\' {
            let (decoded, used) = unescape(&chars[pos + 1..]);
            pos += 1 + used;
            let end = end_of(pos - 1)?;
            for d in decoded.chars() {
                value.push(d);
                value_ends.push(end);
            }
            continue;
        }
        value.push(c);
        value_ends.push(end_of(pos)?);
        pos += 1;
    }
    // Trailing whitespace is part of a Java property value, but every client
    // trims it before use.
    let trimmed_len = value.trim_end().chars().count();
    let value_end = if trimmed_len == 0 {
        value_start
    } else {
        value_ends[trimmed_len - 1]
    };
    let value = value.trim_end().to_owned();
    let span_end = value_end.max(key_end);
    Some(Entry {
        key,
        key_span: key_start..key_end,
        value,
        value_span: value_start..value_end.max(value_start),
        kind: ValueKind::Text,
        span: key_start..span_end,
        delete_span: line,
    })
}

/// The character an escape stands for (`rest` follows the backslash) and how
/// many characters of `rest` it used: `\t`, `\n`, `\r`, `\f`, `\uXXXX`, and
/// any other character standing for itself.
fn unescape(rest: &[(char, usize)]) -> (String, usize) {
    let Some(&(c, _)) = rest.first() else {
        return (String::new(), 0);
    };
    match c {
        't' => ("\t".to_owned(), 1),
        'n' => ("\n".to_owned(), 1),
        'r' => ("\r".to_owned(), 1),
        'f' => ("\u{c}".to_owned(), 1),
        'u' => {
            let hex: String = rest.iter().skip(1).take(4).map(|&(c, _)| c).collect();
            match (hex.len() == 4).then(|| u32::from_str_radix(&hex, 16).ok()).flatten() {
                Some(code) => (char::from_u32(code).unwrap_or('\u{fffd}').to_string(), 5),
                // Java throws on a malformed \u escape; keep the text as written.
                None => ("u".to_owned(), 1),
            }
        }
        other => (other.to_string(), 1),
    }
}

// ---------------------------------------------------------------------------
// JSON

/// A reader of one JSON text that keeps byte offsets.
struct JsonReader<'a> {
    src: &'a str,
    pos: usize,
    entries: Vec<Entry>,
    /// Members of the top-level object: (start of key, end of value), to
    /// compute deletion ranges and where new entries go.
    top_members: Vec<Range<usize>>,
}

type JsonResult<T> = Result<T, SyntaxError>;

impl<'a> JsonReader<'a> {
    fn error<T>(&self, message: impl Into<String>) -> JsonResult<T> {
        let end = self.src[self.pos..]
            .chars()
            .next()
            .map_or(self.pos, |c| self.pos + c.len_utf8());
        Err(SyntaxError {
            message: message.into(),
            span: self.pos..end,
        })
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, b: u8, what: &str) -> JsonResult<()> {
        self.skip_ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            self.error(format!("expected {what}"))
        }
    }

    /// An object whose keys are prefixed with `prefix`.
    fn object(&mut self, prefix: &str, depth: usize) -> JsonResult<()> {
        if depth > JSON_DEPTH_MAX {
            return self.error(format!("objects nested more than {JSON_DEPTH_MAX} deep"));
        }
        self.expect(b'{', "`{`")?;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return self.error("expected a key in double quotes");
            }
            let key_start = self.pos;
            let name = self.string()?;
            let key_span = key_start..self.pos;
            self.expect(b':', "`:` after the key")?;
            self.skip_ws();
            let key = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}.{name}")
            };
            let value_start = self.pos;
            if self.peek() == Some(b'{') {
                self.object(&key, depth + 1)?;
            } else {
                let (value, kind) = self.value(depth)?;
                self.entries.push(Entry {
                    key,
                    key_span: key_span.clone(),
                    value,
                    value_span: value_start..self.pos,
                    kind,
                    span: key_span.start..self.pos,
                    delete_span: key_span.start..self.pos,
                });
            }
            if depth == 0 {
                self.top_members.push(key_start..self.pos);
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return self.error("expected `,` or `}`"),
            }
        }
    }

    /// A scalar or an array: its text (unescaped for strings) and kind.
    fn value(&mut self, depth: usize) -> JsonResult<(String, ValueKind)> {
        let start = self.pos;
        match self.peek() {
            Some(b'"') => Ok((self.string()?, ValueKind::Text)),
            Some(b'[') => {
                self.array(depth + 1)?;
                Ok((self.src[start..self.pos].to_owned(), ValueKind::Array))
            }
            Some(b't') | Some(b'f') | Some(b'n') => {
                for (word, kind) in [
                    ("true", ValueKind::Bool),
                    ("false", ValueKind::Bool),
                    ("null", ValueKind::Null),
                ] {
                    if self.src[self.pos..].starts_with(word) {
                        self.pos += word.len();
                        return Ok((word.to_owned(), kind));
                    }
                }
                self.error("expected a value")
            }
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
                Ok((self.src[start..self.pos].to_owned(), ValueKind::Number))
            }
            _ => self.error("expected a value"),
        }
    }

    fn array(&mut self, depth: usize) -> JsonResult<()> {
        if depth > JSON_DEPTH_MAX {
            return self.error(format!("arrays nested more than {JSON_DEPTH_MAX} deep"));
        }
        self.expect(b'[', "`[`")?;
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            if self.peek() == Some(b'{') {
                // Objects inside arrays are no client setting; read and drop.
                let mut inner = JsonReader {
                    src: self.src,
                    pos: self.pos,
                    entries: Vec::new(),
                    top_members: Vec::new(),
                };
                inner.object("", depth + 1)?;
                self.pos = inner.pos;
            } else {
                self.value(depth)?;
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return self.error("expected `,` or `]`"),
            }
        }
    }

    fn number(&mut self) -> JsonResult<()> {
        let digits = |r: &mut Self| {
            let start = r.pos;
            while matches!(r.peek(), Some(b'0'..=b'9')) {
                r.pos += 1;
            }
            r.pos > start
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        if !digits(self) {
            return self.error("expected digits");
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !digits(self) {
                return self.error("expected digits after `.`");
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !digits(self) {
                return self.error("expected digits in the exponent");
            }
        }
        Ok(())
    }

    /// A string literal at `pos`, unescaped.
    fn string(&mut self) -> JsonResult<String> {
        self.expect(b'"', "`\"`")?;
        let mut out = String::new();
        loop {
            let Some(c) = self.src[self.pos..].chars().next() else {
                return self.error("unterminated string");
            };
            match c {
                '"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                '\\' => {
                    self.pos += 1;
                    let Some(e) = self.peek() else {
                        return self.error("unterminated string");
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let code = self.hex4()?;
                            let c = if (0xD800..0xDC00).contains(&code) && self.src[self.pos..].starts_with("\\u") {
                                self.pos += 2;
                                let low = self.hex4()?;
                                char::from_u32(0x10000 + ((code - 0xD800) << 10) + (low.wrapping_sub(0xDC00) & 0x3FF))
                            } else {
                                char::from_u32(code)
                            };
                            out.push(c.unwrap_or('\u{fffd}'));
                        }
                        _ => {
                            self.pos -= 1;
                            return self.error("unknown escape");
                        }
                    }
                }
                c if (c as u32) < 0x20 => return self.error("control character in a string"),
                c => {
                    out.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }

    fn hex4(&mut self) -> JsonResult<u32> {
        let hex = self.src.get(self.pos..self.pos + 4).unwrap_or("");
        match u32::from_str_radix(hex, 16) {
            Ok(v) if hex.len() == 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                self.pos += 4;
                Ok(v)
            }
            _ => self.error("expected four hex digits"),
        }
    }
}

/// Reads a JSON object. Nested objects contribute their keys joined with `.`
/// (`{"enable": {"idempotence": true}}` is `enable.idempotence`).
fn parse_json(source: &str) -> ParsedFile {
    let mut reader = JsonReader {
        src: source,
        pos: 0,
        entries: Vec::new(),
        top_members: Vec::new(),
    };
    let mut error = reader.object("", 0).err();
    if error.is_none() {
        reader.skip_ws();
        if reader.pos < source.len() {
            error = reader.error::<()>("unexpected text after the object").err();
        }
    }
    // Deleting a member also deletes the comma after it (or, for the last one,
    // the comma before it).
    let members = &reader.top_members;
    for entry in &mut reader.entries {
        if let Some(i) = members.iter().position(|m| m.start == entry.key_span.start) {
            entry.delete_span = if i + 1 < members.len() {
                members[i].start..members[i + 1].start
            } else if i > 0 {
                members[i - 1].end..members[i].end
            } else {
                members[i].clone()
            };
        }
    }
    let indent = members
        .first()
        .map(|m| {
            let line_start = source[..m.start].rfind('\n').map_or(0, |p| p + 1);
            source[line_start..m.start].to_owned()
        })
        .filter(|s| s.chars().all(char::is_whitespace))
        .unwrap_or_else(|| "  ".to_owned());
    let (insert_at, insert_prefix) = match members.last() {
        Some(last) => (last.end, format!(",\n{indent}")),
        None => (source.find('{').map_or(0, |p| p + 1), format!("\n{indent}")),
    };
    ParsedFile {
        format: Format::Json,
        insert_suffix: if members.is_empty() {
            "\n".to_owned()
        } else {
            String::new()
        },
        entries: reader.entries,
        insert_at,
        insert_prefix,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(src: &str) -> Vec<(String, String)> {
        ParsedFile::parse(src, Format::Properties)
            .entries
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect()
    }

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn properties_separators_comments_and_whitespace_follow_java() {
        let src =
            "# comment\n! also a comment\n\n  acks = all\nretries:3\nlinger.ms 5\nclient.id=\nkey\\ with\\=odd = v \n";
        assert_eq!(
            props(src),
            vec![
                pair("acks", "all"),
                pair("retries", "3"),
                pair("linger.ms", "5"),
                pair("client.id", ""),
                pair("key with=odd", "v"),
            ]
        );
    }

    #[test]
    fn properties_continuations_join_lines_and_drop_leading_whitespace() {
        let src = "bootstrap.servers=a:9092,\\\n    b:9092\n# not continued \\\nacks=all\nodd=x\\\\\nnext=y\n";
        assert_eq!(
            props(src),
            vec![
                pair("bootstrap.servers", "a:9092,b:9092"),
                pair("acks", "all"),
                pair("odd", "x\\"),
                pair("next", "y"),
            ]
        );
    }

    #[test]
    fn properties_spans_cover_the_key_and_the_trimmed_value() {
        let src = "a=1\n  acks =  all  \r\nz=\\u0041b\n";
        let f = ParsedFile::parse(src, Format::Properties);
        let e = &f.entries[1];
        assert_eq!(&src[e.key_span.clone()], "acks");
        assert_eq!(&src[e.value_span.clone()], "all");
        assert_eq!(&src[e.span.clone()], "acks =  all");
        assert_eq!(&src[e.delete_span.clone()], "  acks =  all  \r\n");
        assert_eq!(f.entries[2].value, "Ab");
        assert_eq!(&src[f.entries[2].value_span.clone()], "\\u0041b");
    }

    #[test]
    fn properties_insertion_goes_on_a_line_of_its_own_in_the_files_style() {
        let f = ParsedFile::parse("acks=all", Format::Properties);
        assert_eq!(
            (f.insert_at, f.insert_prefix.as_str(), f.insert_suffix.as_str()),
            (8, "\n", "")
        );
        let f = ParsedFile::parse("acks=all\r\n", Format::Properties);
        assert_eq!(
            (f.insert_at, f.insert_prefix.as_str(), f.insert_suffix.as_str()),
            (8, "\r\n", "")
        );
        let f = ParsedFile::parse("", Format::Properties);
        assert_eq!(
            (f.insert_at, f.insert_prefix.as_str(), f.insert_suffix.as_str()),
            (0, "", "\n")
        );
    }

    #[test]
    fn json_flat_and_nested_keys_keep_their_spans() {
        let src = "{\n  \"acks\": \"all\",\n  \"enable\": {\"idempotence\": true},\n  \"retries\": 5,\n  \"x\": [1, {\"a\": 2}]\n}";
        let f = ParsedFile::parse(src, Format::Json);
        assert!(f.error.is_none(), "{:?}", f.error);
        let keys: Vec<&str> = f.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["acks", "enable.idempotence", "retries", "x"]);
        assert_eq!(&src[f.entries[0].value_span.clone()], "\"all\"");
        assert_eq!(f.entries[0].value, "all");
        assert_eq!(&src[f.entries[1].key_span.clone()], "\"idempotence\"");
        assert_eq!(f.entries[1].kind, ValueKind::Bool);
        assert_eq!(f.entries[2].kind, ValueKind::Number);
        assert_eq!(f.entries[3].kind, ValueKind::Array);
        assert_eq!(&src[f.entries[0].delete_span.clone()], "\"acks\": \"all\",\n  ");
        assert_eq!(&src[f.entries[3].delete_span.clone()], ",\n  \"x\": [1, {\"a\": 2}]");
        assert_eq!(f.insert_prefix, ",\n  ");
        assert_eq!(f.entry_text("acks", "all"), "\"acks\": \"all\"");
        assert_eq!(f.entry_text("retries", "5"), "\"retries\": 5");
    }

    #[test]
    fn json_errors_say_where_and_keep_what_came_before() {
        let src = "{\"acks\": \"all\", \"retries\" 3}";
        let f = ParsedFile::parse(src, Format::Json);
        assert_eq!(f.entries.len(), 1);
        let e = f.error.unwrap();
        assert_eq!(e.message, "expected `:` after the key");
        assert_eq!(e.span, 26..27);
        let deep = format!("{}{}", "{\"a\":".repeat(40), "}".repeat(40));
        assert!(ParsedFile::parse(&deep, Format::Json).error.is_some());
        assert!(ParsedFile::parse("{\"a\": \"\\ud83d\\ude00\"}", Format::Json).entries[0].value == "\u{1F600}");
        assert!(ParsedFile::parse("[1]", Format::Json).error.is_some());
        assert!(ParsedFile::parse("{} x", Format::Json).error.is_some());
    }

    #[test]
    fn format_detection_uses_the_extension_then_the_text() {
        assert_eq!(Format::detect("a.JSON", "acks=1"), Format::Json);
        assert_eq!(Format::detect("a.conf", "  {\"acks\": 1}"), Format::Json);
        assert_eq!(Format::detect("a.properties", "acks=1"), Format::Properties);
    }
}
