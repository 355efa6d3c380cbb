//! `google.api.http` path templates (the grammar in google/api/http.proto): parsed once at start-up
//! and matched against request paths, yielding the value of each variable.
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! Verb     = ":" LITERAL ;
//! ```

use percent_encoding::percent_decode_str;

/// One segment of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Exactly this text.
    Literal(String),
    /// Any one segment (`*`).
    One,
    /// Any number of segments, at least one, only last (`**`).
    Rest,
}

/// A variable: the request field it fills and the segments it spans.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Variable {
    field_path: String,
    first: usize,
    /// One past the last segment.
    end: usize,
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    segments: Vec<Segment>,
    variables: Vec<Variable>,
    verb: Option<String>,
}

/// Why a template can't be used.
#[derive(Debug, thiserror::Error)]
#[error("path template `{template}`: {reason}")]
pub struct TemplateError {
    template: String,
    reason: &'static str,
}

impl PathTemplate {
    /// Parses `template`.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let fail = |reason| TemplateError {
            template: template.to_owned(),
            reason,
        };
        let rest = template
            .strip_prefix('/')
            .ok_or_else(|| fail("must start with '/'"))?;
        // The verb follows the last ':' outside braces.
        let (path, verb) = match rest.rfind(':') {
            Some(at) if !rest[at..].contains('}') => (&rest[..at], Some(rest[at + 1..].to_owned())),
            _ => (rest, None),
        };
        if verb.as_deref().is_some_and(str::is_empty) {
            return Err(fail("empty verb"));
        }
        let mut segments = Vec::new();
        let mut variables = Vec::new();
        let mut remaining = path;
        while !remaining.is_empty() {
            if let Some(inner) = remaining.strip_prefix('{') {
                let close = inner.find('}').ok_or_else(|| fail("unclosed '{'"))?;
                let (field_path, pattern) = match inner[..close].split_once('=') {
                    Some((field, pattern)) => (field, pattern),
                    None => (&inner[..close], "*"),
                };
                if field_path.is_empty() || field_path.contains(['/', '*', '{']) {
                    return Err(fail("bad variable name"));
                }
                let first = segments.len();
                for part in pattern.split('/') {
                    segments.push(segment(part).ok_or_else(|| fail("bad variable pattern"))?);
                }
                variables.push(Variable {
                    field_path: field_path.to_owned(),
                    first,
                    end: segments.len(),
                });
                remaining = &inner[close + 1..];
            } else {
                let end = remaining.find('/').unwrap_or(remaining.len());
                let part = &remaining[..end];
                if part.contains(['{', '}']) {
                    return Err(fail("a variable must be a whole segment"));
                }
                segments.push(segment(part).ok_or_else(|| fail("empty segment"))?);
                remaining = &remaining[end..];
            }
            remaining = match remaining.strip_prefix('/') {
                Some("") => return Err(fail("trailing '/'")),
                Some(next) => next,
                None if remaining.is_empty() => remaining,
                None => return Err(fail("a variable must be a whole segment")),
            };
        }
        if segments
            .iter()
            .rev()
            .skip(1)
            .any(|segment| *segment == Segment::Rest)
        {
            return Err(fail("'**' must be last"));
        }
        Ok(Self {
            segments,
            variables,
            verb,
        })
    }

    /// The field paths of the template's variables, in order.
    pub fn field_paths(&self) -> impl Iterator<Item = &str> {
        self.variables.iter().map(|v| v.field_path.as_str())
    }

    /// Whether the template ends with a custom verb (`:block`); such routes are tried first, so
    /// `/v1/contacts/{contact_id}:block` is not taken for a contact id ending in `:block`.
    pub fn has_verb(&self) -> bool {
        self.verb.is_some()
    }

    /// The template as an OpenAPI path: each variable as `{field.path}`, the verb kept.
    pub fn openapi_path(&self) -> String {
        let mut path = String::new();
        let mut index = 0;
        while index < self.segments.len() {
            path.push('/');
            match self.variables.iter().find(|v| v.first == index) {
                Some(variable) => {
                    path.push('{');
                    path.push_str(&variable.field_path);
                    path.push('}');
                    index = variable.end;
                }
                None => {
                    match &self.segments[index] {
                        Segment::Literal(text) => path.push_str(text),
                        Segment::One => path.push('*'),
                        Segment::Rest => path.push_str("**"),
                    }
                    index += 1;
                }
            }
        }
        if let Some(verb) = &self.verb {
            path.push(':');
            path.push_str(verb);
        }
        path
    }

    /// The variables' values (percent-decoded) when `path` matches, `None` when it doesn't.
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let path = path.strip_prefix('/')?;
        let path = match &self.verb {
            Some(verb) => path.strip_suffix(verb.as_str())?.strip_suffix(':')?,
            None => path,
        };
        let parts: Vec<&str> = path.split('/').collect();
        // Where each template segment's match starts, for the variables.
        let mut starts = Vec::with_capacity(self.segments.len() + 1);
        let mut at = 0;
        for segment in &self.segments {
            starts.push(at);
            match segment {
                Segment::Literal(text) => {
                    if parts.get(at) != Some(&text.as_str()) {
                        return None;
                    }
                    at += 1;
                }
                Segment::One => {
                    if parts.get(at).is_none_or(|part| part.is_empty()) {
                        return None;
                    }
                    at += 1;
                }
                Segment::Rest => {
                    if at >= parts.len() || parts[at..].iter().any(|part| part.is_empty()) {
                        return None;
                    }
                    at = parts.len();
                }
            }
        }
        starts.push(at);
        if at != parts.len() {
            return None;
        }
        let mut values = Vec::with_capacity(self.variables.len());
        for variable in &self.variables {
            let matched = &parts[starts[variable.first]..starts[variable.end]];
            let mut value = String::new();
            for (index, part) in matched.iter().enumerate() {
                if index > 0 {
                    value.push('/');
                }
                value.push_str(&percent_decode_str(part).decode_utf8().ok()?);
            }
            values.push((variable.field_path.clone(), value));
        }
        Some(values)
    }
}

fn segment(part: &str) -> Option<Segment> {
    match part {
        "" => None,
        "*" => Some(Segment::One),
        "**" => Some(Segment::Rest),
        literal => Some(Segment::Literal(literal.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(template: &str, path: &str) -> Option<Vec<(String, String)>> {
        PathTemplate::parse(template).unwrap().matches(path)
    }

    fn pair(field: &str, value: &str) -> (String, String) {
        (field.to_owned(), value.to_owned())
    }

    #[test]
    fn literal_paths_match_only_themselves() {
        assert_eq!(values("/v1/contacts", "/v1/contacts"), Some(vec![]));
        assert_eq!(values("/v1/contacts", "/v1/contacts/x"), None);
        assert_eq!(values("/v1/contacts", "/v1/contact"), None);
    }

    #[test]
    fn variables_take_one_decoded_segment() {
        assert_eq!(
            values("/v1/contacts/{contact.contact_id}", "/v1/contacts/a%20b"),
            Some(vec![pair("contact.contact_id", "a b")])
        );
        assert_eq!(values("/v1/contacts/{contact_id}", "/v1/contacts/"), None);
        assert_eq!(
            values("/v1/contacts/{contact_id}", "/v1/contacts/a/b"),
            None
        );
    }

    #[test]
    fn verbs_are_split_from_the_last_segment() {
        let template = "/v1/contacts/{contact_id}:block";
        assert_eq!(
            values(template, "/v1/contacts/c1:block"),
            Some(vec![pair("contact_id", "c1")])
        );
        assert_eq!(values(template, "/v1/contacts/c1"), None);
        assert_eq!(
            values("/v1/contacts:merge", "/v1/contacts:merge"),
            Some(vec![])
        );
        assert_eq!(values("/v1/contacts:merge", "/v1/contacts"), None);
    }

    #[test]
    fn variables_with_patterns_span_their_segments() {
        let template = "/v1/{name=shelves/*/books/*}/pages/{page=**}";
        assert_eq!(
            values(template, "/v1/shelves/s/books/b/pages/1/2"),
            Some(vec![pair("name", "shelves/s/books/b"), pair("page", "1/2")])
        );
        assert_eq!(values(template, "/v1/shelves/s/pages/1"), None);
        assert_eq!(
            PathTemplate::parse(template).unwrap().openapi_path(),
            "/v1/{name}/pages/{page}"
        );
    }

    #[test]
    fn malformed_templates_are_refused() {
        for template in [
            "v1/x", "/v1/{x", "/v1/a{x}", "/v1/**/x", "/v1/x:", "/v1//x", "/v1/",
        ] {
            assert!(PathTemplate::parse(template).is_err(), "{template}");
        }
    }
}
