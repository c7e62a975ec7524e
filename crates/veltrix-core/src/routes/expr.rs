//! Routing expressions: CEL, compiled and checked once, evaluated per record.
//!
//! An expression sees the record as these variables:
//!
//! | variable | type |
//! |---|---|
//! | `key` | string when the key is UTF-8, bytes otherwise, null when absent |
//! | `value` | the value parsed as JSON when it is JSON (a map, list, string, number, bool or null); bytes otherwise; null when absent |
//! | `headers` | map of header key to value (string when UTF-8, bytes otherwise; the last of repeated keys) |
//! | `timestamp` | int, milliseconds since the epoch |
//! | `partition` | int, the source partition |
//! | `offset` | int, the source offset |
//!
//! cel-rust has no type checker: a compiled expression is checked for
//! variables and functions that do not exist, and its type is known only
//! when it runs (a `when` that is not a bool then is an error for that
//! record, which goes to the route's dead letters).

use std::collections::HashMap;
use std::sync::Arc;

use cel::objects::{Key, Map, Value};
use cel::{Context, Program};

use crate::records::OwnedRecord;

/// The variables an expression may use.
pub const VARIABLES: [&str; 6] = ["key", "value", "headers", "timestamp", "partition", "offset"];
/// The longest expression accepted, in bytes.
pub const EXPRESSION_BYTES_MAX: usize = 4_096;
/// The deepest JSON value turned into CEL values; deeper levels are left out
/// (an expression reaching them sees no such field).
const JSON_DEPTH_MAX: usize = 32;

/// What is wrong with an expression, at a line and column inside it (both
/// from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for ExprError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// A compiled expression.
#[derive(Debug)]
pub struct Expr {
    source: String,
    program: Program,
    /// Whether it reads `value` (else the value is not parsed).
    reads_value: bool,
}

/// Functions an unknown name is compared with, for a "did you mean".
const SUGGESTIONS: [&str; 18] = [
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "type",
    "dyn",
    "has",
    "all",
    "exists",
    "exists_one",
    "filter",
];

/// Whether CEL's standard environment has a function `name`, global or
/// member: cel-rust lists neither, so a call to it with no arguments is
/// made both ways, and only a function it has not got is "undeclared".
fn known_function(name: &str) -> bool {
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        // Operators (`_==_`, `@in`, `!_`) are the parser's own.
        return true;
    }
    let root = Context::default();
    [format!("{name}()"), format!("(0).{name}()")].iter().any(|probe| {
        let Ok(p) = Program::compile(probe) else {
            return false;
        };
        !matches!(p.execute(&root), Err(cel::ExecutionError::UndeclaredReference(n)) if *n == name)
    })
}

impl Expr {
    /// Compiles `source`: its syntax, then every variable and function it
    /// names. Errors carry the position of what is wrong.
    pub fn compile(source: &str) -> Result<Expr, Vec<ExprError>> {
        if source.len() > EXPRESSION_BYTES_MAX {
            return Err(vec![ExprError {
                line: 1,
                column: 1,
                message: format!(
                    "the expression is {} bytes; at most {EXPRESSION_BYTES_MAX}",
                    source.len()
                ),
            }]);
        }
        if source.trim().is_empty() {
            return Err(vec![ExprError {
                line: 1,
                column: 1,
                message: "the expression is empty".to_owned(),
            }]);
        }
        let program = Program::compile(source).map_err(|errors| {
            errors
                .errors
                .into_iter()
                .map(|e| ExprError {
                    line: usize::try_from(e.pos.0).unwrap_or(1).max(1),
                    // cel-rust counts columns from 1 already.
                    column: usize::try_from(e.pos.1).unwrap_or(1).max(1),
                    message: e.msg,
                })
                .collect::<Vec<_>>()
        })?;
        let mut errors = Vec::new();
        let bound = bound_names(program.expression());
        let references = program.references();
        let mut variables: Vec<&str> = references.variables();
        variables.sort_unstable();
        for v in variables {
            if !VARIABLES.contains(&v) && !bound.iter().any(|b| b == v) {
                let (line, column) = position_of(source, v, false);
                errors.push(ExprError {
                    line,
                    column,
                    message: format!("unknown variable `{v}`; a record has {}", VARIABLES.join(", ")),
                });
            }
        }
        let mut called: Vec<&str> = references.functions();
        called.sort_unstable();
        for f in called {
            if known_function(f) {
                continue;
            }
            let (line, column) = position_of(source, f, true);
            let near = SUGGESTIONS
                .iter()
                .min_by_key(|k| edit_distance(k, f))
                .filter(|k| edit_distance(k, f) <= 2);
            let hint = near.map_or(String::new(), |n| format!("; did you mean `{n}`?"));
            errors.push(ExprError {
                line,
                column,
                message: format!("unknown function `{f}`{hint}"),
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let reads_value = program.references().has_variable("value");
        Ok(Expr {
            source: source.to_owned(),
            program,
            reads_value,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn reads_value(&self) -> bool {
        self.reads_value
    }

    /// Whether the expression holds for the record whose variables `scope`
    /// holds ([`RecordVars::scope`]): an error when it fails or its result
    /// is not a bool.
    pub fn matches(&self, scope: &Context<'_, '_>) -> Result<bool, String> {
        match self.program.execute(scope) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("`{}` gave {}, not a bool", self.source, type_name(&other))),
            Err(e) => Err(format!("`{}`: {e}", self.source)),
        }
    }
}

/// The root context expressions run in: CEL's standard functions.
pub fn root_context() -> Context<'static, 'static> {
    Context::default()
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::List(_) => "a list",
        Value::Map(_) => "a map",
        Value::Int(_) => "an int",
        Value::UInt(_) => "a uint",
        Value::Float(_) => "a double",
        Value::String(_) => "a string",
        Value::Bytes(_) => "bytes",
        Value::Bool(_) => "a bool",
        Value::Null => "null",
        _ => "a value of another type",
    }
}

/// A record's variables, built once per record for all of a route's rules.
pub struct RecordVars {
    key: Value,
    value: Value,
    headers: Value,
    timestamp: i64,
    partition: i64,
    offset: i64,
}

impl RecordVars {
    /// `parse_value`: whether any expression reads `value` (else it is not
    /// parsed).
    pub fn new(record: &OwnedRecord, partition: i32, offset: i64, parse_value: bool) -> RecordVars {
        let value = match &record.value {
            None => Value::Null,
            Some(v) if parse_value => json_or_bytes(v),
            Some(_) => Value::Null,
        };
        let mut headers: HashMap<Key, Value> = HashMap::with_capacity(record.headers.len());
        for (k, v) in &record.headers {
            let k = Key::String(Arc::new(String::from_utf8_lossy(k).into_owned()));
            headers.insert(k, v.as_deref().map_or(Value::Null, text_or_bytes));
        }
        RecordVars {
            key: record.key.as_deref().map_or(Value::Null, text_or_bytes),
            value,
            headers: Value::Map(Map { map: Arc::new(headers) }),
            timestamp: record.timestamp_ms,
            partition: i64::from(partition),
            offset,
        }
    }

    /// A scope of `root` in which the record's variables are bound, for
    /// every rule of a route in turn.
    pub fn scope<'p, 'v>(self, root: &'p Context<'p, 'v>) -> Context<'p, 'v> {
        let mut scope = root.new_inner_scope();
        scope.add_variable_from_value("key", self.key);
        scope.add_variable_from_value("value", self.value);
        scope.add_variable_from_value("headers", self.headers);
        scope.add_variable_from_value("timestamp", self.timestamp);
        scope.add_variable_from_value("partition", self.partition);
        scope.add_variable_from_value("offset", self.offset);
        scope
    }
}

fn text_or_bytes(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(Arc::new(s.to_owned())),
        Err(_) => Value::Bytes(Arc::new(b.to_vec())),
    }
}

fn json_or_bytes(b: &[u8]) -> Value {
    match serde_json::from_slice::<serde_json::Value>(b) {
        Ok(j) => from_json(j, 0),
        Err(_) => Value::Bytes(Arc::new(b.to_vec())),
    }
}

fn from_json(j: serde_json::Value, depth: usize) -> Value {
    use serde_json::Value as J;
    match j {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(b),
        J::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::UInt(u),
            _ => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::String(Arc::new(s)),
        J::Array(_) | J::Object(_) if depth >= JSON_DEPTH_MAX => Value::Null,
        J::Array(items) => Value::List(Arc::new(items.into_iter().map(|i| from_json(i, depth + 1)).collect())),
        J::Object(fields) => {
            let map: HashMap<Key, Value> = fields
                .into_iter()
                .map(|(k, v)| (Key::String(Arc::new(k)), from_json(v, depth + 1)))
                .collect();
            Value::Map(Map { map: Arc::new(map) })
        }
    }
}

/// Names bound inside the expression by comprehensions (`x` in
/// `list.exists(x, x > 1)`), which are not the record's variables.
fn bound_names(e: &cel::common::ast::IdedExpr) -> Vec<String> {
    use cel::common::ast::Expr as E;
    let mut out = Vec::new();
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        match &e.expr {
            E::Comprehension(c) => {
                out.push(c.iter_var.clone());
                out.push(c.accu_var.clone());
                stack.extend([&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result]);
            }
            E::Call(call) => {
                stack.extend(call.target.iter().map(|t| &**t));
                stack.extend(call.args.iter());
            }
            E::List(l) => stack.extend(l.elements.iter()),
            E::Map(m) => {
                for entry in &m.entries {
                    if let cel::common::ast::EntryExpr::MapEntry(me) = &entry.expr {
                        stack.push(&me.key);
                        stack.push(&me.value);
                    }
                }
            }
            E::Select(s) => stack.push(&s.operand),
            _ => {}
        }
    }
    out
}

/// Line and column (from 1) of the first occurrence of `name` as a word in
/// `source` (after a `.` only when `member`: a field or method of
/// something, not a variable); 1:1 when not found.
fn position_of(source: &str, name: &str, member: bool) -> (usize, usize) {
    let bytes = source.as_bytes();
    let word = |i: usize| i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_');
    let mut from = 0;
    while let Some(i) = source[from..].find(name).map(|i| i + from) {
        let end = i + name.len();
        let after_dot = source[..i].trim_end().ends_with('.');
        if (i == 0 || !word(i - 1)) && !word(end) && (member || !after_dot) {
            let before = &source[..i];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            return (line, column);
        }
        from = end;
    }
    (1, 1)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, value: &[u8]) -> OwnedRecord {
        OwnedRecord {
            key: Some(key.as_bytes().to_vec()),
            value: Some(value.to_vec()),
            headers: vec![(b"type".to_vec(), Some(b"reward".to_vec()))],
            timestamp_ms: 1_700_000_000_000,
        }
    }

    fn eval(source: &str, r: &OwnedRecord) -> Result<bool, String> {
        let e = Expr::compile(source).unwrap();
        let root = root_context();
        e.matches(&RecordVars::new(r, 3, 42, e.reads_value()).scope(&root))
    }

    #[test]
    fn a_record_is_seen_through_its_key_value_headers_and_position() {
        let r = record("player-7", br#"{"type": "reward", "amount": 12, "tags": ["a", "b"]}"#);
        assert_eq!(eval(r#"value.type == "reward" && value.amount > 10"#, &r), Ok(true));
        assert_eq!(eval(r#"headers["type"] == "reward""#, &r), Ok(true));
        assert_eq!(eval(r#"key.startsWith("player-")"#, &r), Ok(true));
        assert_eq!(eval("partition == 3 && offset == 42 && timestamp > 0", &r), Ok(true));
        assert_eq!(eval(r#"value.tags.exists(t, t == "b")"#, &r), Ok(true));
        assert_eq!(eval(r#"has(value.missing)"#, &r), Ok(false));
    }

    #[test]
    fn a_value_that_is_not_json_is_bytes() {
        let r = record("k", b"\xff\x00 not json");
        assert_eq!(eval("size(value) == 11", &r), Ok(true));
        assert!(eval("value.type == 1", &r).is_err());
    }

    #[test]
    fn a_missing_field_or_a_result_that_is_not_a_bool_is_an_error_for_that_record() {
        let r = record("k", br#"{"type": "ping"}"#);
        let missing = eval("value.amount > 1", &r).unwrap_err();
        assert!(missing.contains("amount"), "{missing}");
        let not_bool = eval("value.type", &r).unwrap_err();
        assert!(not_bool.contains("a string, not a bool"), "{not_bool}");
    }

    #[test]
    fn syntax_errors_say_where_inside_the_expression() {
        let errors = Expr::compile("value.type ==\n  && true").unwrap_err();
        assert_eq!((errors[0].line, errors[0].column), (2, 3), "{errors:?}");
    }

    #[test]
    fn unknown_variables_and_functions_are_named_with_their_position() {
        let errors = Expr::compile("record.type == 'x'").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].line, errors[0].column), (1, 1));
        assert!(errors[0].message.contains("unknown variable `record`"), "{errors:?}");

        let errors = Expr::compile("value.record > 1 || record == 2").unwrap_err();
        assert_eq!(
            (errors[0].line, errors[0].column),
            (1, 21),
            "the variable, not the field: {errors:?}"
        );

        let errors = Expr::compile("key == 'a' || startswith(key, 'b')").unwrap_err();
        assert_eq!((errors[0].line, errors[0].column), (1, 15), "{errors:?}");
        assert!(errors[0].message.contains("did you mean `startsWith`"), "{errors:?}");
        // Comprehension variables are not unknown.
        Expr::compile("value.items.all(i, i.price > 0)").unwrap();
    }

    #[test]
    fn oversized_and_empty_expressions_are_refused() {
        assert!(Expr::compile(&"a".repeat(EXPRESSION_BYTES_MAX + 1)).is_err());
        assert!(Expr::compile("  ").is_err());
    }
}
