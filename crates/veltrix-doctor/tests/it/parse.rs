//! Places in the file survive the `.properties` syntax's corners: findings on
//! continued lines, escaped keys and `:` separators point at the right line
//! and column.

use veltrix_doctor::{Dialect, Role};

use crate::{expect, props};

#[test]
fn findings_on_continued_lines_point_at_the_value() {
    let src = "bootstrap.servers=a:9092,\\\n    b:9092\nacks = \\\n   0\n";
    let r = props(src, Dialect::Java, Role::Producer);
    let f = expect(&r, "D101", Some(4), Some("acks=all"));
    assert_eq!(f.location.as_ref().map(|l| l.column), Some(4));
}

#[test]
fn colon_separators_and_indentation_keep_columns() {
    let r = props("# producer\n   acks : 1\n", Dialect::Java, Role::Producer);
    let f = expect(&r, "D102", Some(2), Some("acks=all"));
    assert_eq!(f.location.as_ref().map(|l| l.column), Some(11));
}
