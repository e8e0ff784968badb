//! Kafka topic names: checking them, and building them from a template.

/// Kafka refuses longer names.
const MAX_LEN: usize = 249;

/// `Err` says why `name` is not a topic Kafka would accept: 1 to 249 ASCII
/// letters, digits, `.`, `_` or `-`, and not `.` or `..`.
pub fn check(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a topic name cannot be empty".to_owned());
    }
    if name.len() > MAX_LEN {
        return Err(format!("topic names are at most {MAX_LEN} characters, `{name}` has {}", name.len()));
    }
    if name == "." || name == ".." {
        return Err(format!("`{name}` is not allowed as a topic name"));
    }
    if let Some(bad) = name.chars().find(|c| !legal(*c)) {
        return Err(format!("`{name}` has {bad:?}; topic names use only ASCII letters, digits, `.`, `_` and `-`"));
    }
    Ok(())
}

fn legal(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// A topic name with `{value}` placeholders, such as `github.{value}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
}

const PLACEHOLDER: &str = "{value}";

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        if !text.contains(PLACEHOLDER) {
            return Err(format!("`{text}` has no `{PLACEHOLDER}`; a fixed topic belongs in `default`"));
        }
        // With the placeholders filled by a one-letter slug, the rest of
        // the template must already be a valid topic name.
        check(&text.replace(PLACEHOLDER, "x")).map_err(|e| format!("`{text}` cannot make topic names: {e}"))?;
        Ok(Template { text: text.to_owned() })
    }

    /// The topic for `value`, or `None` when the value has nothing usable
    /// in a topic name or the result would be too long.
    pub fn render(&self, value: &str) -> Option<String> {
        let slug = slug(value);
        if slug.is_empty() {
            return None;
        }
        let topic = self.text.replace(PLACEHOLDER, &slug);
        check(&topic).ok().map(|()| topic)
    }
}

/// `PushEvent` → `push-event`, `order_placed` → `order-placed`,
/// `HTTPRequest` → `http-request`: lower case, words split at case changes,
/// and every run of other characters (non-ASCII letters included, since
/// topic names are ASCII) turned into one `-`.
pub fn slug(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut out = String::with_capacity(value.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
            continue;
        }
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            let starts_word =
                prev.is_ascii_lowercase() || prev.is_ascii_digit() || (prev.is_ascii_uppercase() && next_is_lower);
            if starts_word && !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_split_camel_case_and_punctuation() {
        let cases = [
            ("PushEvent", "push-event"),
            ("PullRequestReviewCommentEvent", "pull-request-review-comment-event"),
            ("OrderPlaced", "order-placed"),
            ("order_placed", "order-placed"),
            ("order.placed", "order-placed"),
            ("HTTPRequest", "http-request"),
            ("Push2Event", "push2-event"),
            ("  Gollum  Event!! ", "gollum-event"),
            ("ORDER", "order"),
            ("já-Entregue", "j-entregue"),
            ("42", "42"),
            ("!!!", ""),
        ];
        for (value, expected) in cases {
            assert_eq!(slug(value), expected, "{value:?}");
        }
    }

    #[test]
    fn kafka_topic_rules_are_enforced() {
        for good in ["orders.placed", "github_push", "a-b", "x", &"t".repeat(249)] {
            assert_eq!(check(good), Ok(()), "{good:?}");
        }
        for bad in ["", ".", "..", "with space", "tópico", "a/b", "{value}", &"t".repeat(250)] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn templates_fill_in_the_slug() {
        let t = Template::parse("github.{value}").expect("valid template");
        assert_eq!(t.render("PushEvent"), Some("github.push-event".to_owned()));
        assert_eq!(t.render("***"), None);
        assert_eq!(t.render(&"A".repeat(300)), None);
        let twice = Template::parse("{value}.{value}").expect("valid template");
        assert_eq!(twice.render("Fork"), Some("fork.fork".to_owned()));
    }

    #[test]
    fn templates_that_cannot_make_topics_are_refused() {
        assert!(Template::parse("github.push").is_err_and(|e| e.contains("has no `{value}`")));
        assert!(Template::parse("github/{value}").is_err_and(|e| e.contains("cannot make topic names")));
        assert!(Template::parse("{type}.{value}").is_err_and(|e| e.contains("cannot make topic names")));
    }
}
