//! Gravitee EL trigger conditions, translated to the CEL the ACL evaluates.
//!
//! Gravitee writes an `mcp-acl` rule's condition in its Expression Language (Spring's SpEL with
//! Gravitee's root variables): `{#request.headers['X-Plan'][0] == 'gold'}`. A user bringing a
//! Gravitee ACL over should not have to rewrite the common forms, and must never see one
//! silently mean something else. So the forms below are translated into CEL over the ACL's
//! variables (`request`, `auth`, `mcp`; see `super::condition`), the translation is shown by
//! `mcpgate check` and at startup, and anything else is refused with a message that says what to
//! write in CEL instead.
//!
//! | Gravitee EL | CEL |
//! |---|---|
//! | `#request.headers['X-Plan'][0]`, `#request.headers.getFirst('X-Plan')` | `request.headers['x-plan']` |
//! | `#request.headers.containsKey('X-Plan')`, `#request.headers['X-Plan'] != null` | `'x-plan' in request.headers` |
//! | `#request.path`, `#request.method`, `#request.remoteAddress` | `request.path`, `request.method`, `request.client_ip` |
//! | `#context.attributes['user']` | `auth.subject` |
//! | `#context.attributes['application']` | `auth.client_id` |
//! | `#jwt.claims['c']`, `#context.attributes['jwt.claims']['c']` | `auth.claims['c']` |
//! | `#jwt.claims.containsKey('c')`, `#jwt.claims['c'] != null` | `'c' in auth.claims` |
//! | `==` `!=` `<` `<=` `>` `>=` (and `eq` `ne` `lt` `le` `gt` `ge`) | the same operators |
//! | `&&` `and`, `\|\|` `or`, `!` `not`, parentheses | `&&`, `\|\|`, `!`, parentheses |
//! | `x matches 're'` (whole string, Java) | `x.matches('^(?:re)$')` (CEL's `matches` searches) |
//! | `x.contains('s')`, `x.startsWith('s')`, `x.endsWith('s')`, `x.equals(y)` | the same (`==`); on a claim, `contains` also tests list membership |
//! | `'single'` / `"double"` quoted strings (`''` is a quote), integers, `true`, `false` | CEL literals |
//!
//! A header's `[0]` is its first value in Gravitee; in CEL a repeated header is its values
//! joined with `", "`, so a comparison with a repeated header does not hold (fails closed).

use std::fmt;

/// Longest EL source accepted (the CEL it becomes is bounded by the condition limits too).
const MAX_EL_LEN: usize = 4096;
/// Deepest nesting the parser follows (it recurses per level).
const MAX_EL_DEPTH: usize = 48;

/// What a condition can read in CEL, for refusal messages.
const CEL_HINT: &str = "write the condition in CEL instead; it can read request.method, \
request.path, request.headers['name'] (lower-case names), request.client_ip, auth.subject, \
auth.client_id, auth.scopes, auth.claims['name'], mcp.method, mcp.name and mcp.uri, e.g. \
`request.headers['x-plan'] == 'gold' && 'mcp:admin' in auth.scopes` (docs/acl.md, \"Conditions\")";

/// An EL condition that cannot be translated: why, and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElError {
    pub message: String,
}

impl fmt::Display for ElError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Gravitee EL not translated: {}; {CEL_HINT}",
            self.message
        )
    }
}

impl std::error::Error for ElError {}

fn refuse<T>(message: impl Into<String>) -> Result<T, ElError> {
    Err(ElError {
        message: message.into(),
    })
}

/// Whether `source` is written in Gravitee EL (`{#…}`, `{!#…}`, `{(#…) || …}`) rather than CEL.
/// A CEL condition cannot start like that: it would be a map literal whose first key is a
/// negation or a parenthesised expression.
pub fn is_el(source: &str) -> bool {
    let s = source.trim();
    let Some(body) = s.strip_prefix('{') else {
        return false;
    };
    let body = body.trim_start_matches(|c: char| c.is_whitespace() || c == '(' || c == '!');
    s.ends_with('}') && (body.starts_with('#') || body.starts_with("not "))
}

/// Translates a Gravitee EL condition (`{#…}`) into CEL.
pub fn translate(source: &str) -> Result<String, ElError> {
    if source.len() > MAX_EL_LEN {
        return refuse(format!("longer than {MAX_EL_LEN} bytes"));
    }
    let s = source.trim();
    let inner = match s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
        Some(inner) if is_el(s) => inner,
        _ => {
            return refuse(
                "a Gravitee condition is one expression in `{#…}` with nothing around it",
            )
        }
    };
    let tokens = lex(inner)?;
    let mut parser = Parser {
        tokens: &tokens,
        at: 0,
        depth: 0,
    };
    let expr = parser.expr()?;
    if let Some(token) = parser.peek() {
        return refuse(format!(
            "unexpected {} after the expression",
            token.describe()
        ));
    }
    let cel = to_cel(&expr)?;
    match cel.kind {
        Kind::Bool => Ok(cel.text),
        _ => refuse(format!(
            "`{}` is a value, not a condition (compare it: `== 'x'`)",
            cel.text
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// `#name`
    Var(String),
    Ident(String),
    Str(String),
    Int(i64),
    Dot,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Comma,
    Op(&'static str),
    Not,
    And,
    Or,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Var(v) => format!("`#{v}`"),
            Token::Ident(i) => format!("`{i}`"),
            Token::Str(s) => format!("the string '{s}'"),
            Token::Int(n) => format!("the number {n}"),
            Token::Dot => "`.`".into(),
            Token::LBracket => "`[`".into(),
            Token::RBracket => "`]`".into(),
            Token::LParen => "`(`".into(),
            Token::RParen => "`)`".into(),
            Token::Comma => "`,`".into(),
            Token::Op(op) => format!("`{op}`"),
            Token::Not => "`!`".into(),
            Token::And => "`&&`".into(),
            Token::Or => "`||`".into(),
        }
    }
}

fn lex(src: &str) -> Result<Vec<Token>, ElError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied();
    while let Some(c) = at(i) {
        match c {
            c if c.is_whitespace() => i += 1,
            '#' => {
                let start = i + 1;
                let mut end = start;
                while at(end).is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                    end += 1;
                }
                if end == start {
                    return refuse("`#` must be followed by a variable name");
                }
                out.push(Token::Var(chars[start..end].iter().collect()));
                i = end;
            }
            '\'' | '"' => {
                // SpEL strings: the quote doubled stands for itself; no backslash escapes.
                let quote = c;
                let mut value = String::new();
                i += 1;
                loop {
                    match at(i) {
                        None => return refuse("a string is not closed"),
                        Some(q) if q == quote => {
                            if at(i + 1) == Some(quote) {
                                value.push(quote);
                                i += 2;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        Some(other) => {
                            value.push(other);
                            i += 1;
                        }
                    }
                }
                out.push(Token::Str(value));
            }
            '0'..='9' => {
                let start = i;
                while at(i).is_some_and(|c| c.is_ascii_digit()) {
                    i += 1;
                }
                if at(i).is_some_and(|c| c == '.' || c.is_ascii_alphabetic()) {
                    return refuse("only whole numbers are supported");
                }
                let digits: String = chars[start..i].iter().collect();
                let n = digits.parse::<i64>().map_err(|_| ElError {
                    message: format!("the number {digits} is too large"),
                })?;
                out.push(Token::Int(n));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while at(i).is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                out.push(match word.as_str() {
                    "and" | "AND" => Token::And,
                    "or" | "OR" => Token::Or,
                    "not" | "NOT" => Token::Not,
                    "eq" | "EQ" => Token::Op("=="),
                    "ne" | "NE" => Token::Op("!="),
                    "lt" | "LT" => Token::Op("<"),
                    "le" | "LE" => Token::Op("<="),
                    "gt" | "GT" => Token::Op(">"),
                    "ge" | "GE" => Token::Op(">="),
                    _ => Token::Ident(word),
                });
            }
            _ => {
                let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
                let (token, len) = match (two.as_str(), c) {
                    ("==", _) => (Token::Op("=="), 2),
                    ("!=", _) => (Token::Op("!="), 2),
                    ("<=", _) => (Token::Op("<="), 2),
                    (">=", _) => (Token::Op(">="), 2),
                    ("&&", _) => (Token::And, 2),
                    ("||", _) => (Token::Or, 2),
                    ("?.", _) | ("?[", _) => {
                        return refuse("safe navigation (`?.`) is not supported")
                    }
                    (_, '<') => (Token::Op("<"), 1),
                    (_, '>') => (Token::Op(">"), 1),
                    (_, '!') => (Token::Not, 1),
                    (_, '.') => (Token::Dot, 1),
                    (_, '[') => (Token::LBracket, 1),
                    (_, ']') => (Token::RBracket, 1),
                    (_, '(') => (Token::LParen, 1),
                    (_, ')') => (Token::RParen, 1),
                    (_, ',') => (Token::Comma, 1),
                    (_, other) => {
                        return refuse(format!(
                            "`{other}` is not supported (only comparisons, and/or/not, \
                             matches and string methods are)"
                        ))
                    }
                };
                out.push(token);
                i += len;
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Parser (SpEL precedence: or < and < relational < unary < postfix)

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(&'static str, Box<Expr>, Box<Expr>),
    Matches(Box<Expr>, Box<Expr>),
    Str(String),
    Int(i64),
    Bool(bool),
    Null,
    Chain(String, Vec<Step>),
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(Expr),
    Call(String, Vec<Expr>),
}

struct Parser<'t> {
    tokens: &'t [Token],
    at: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn expect(&mut self, want: &Token) -> Result<(), ElError> {
        match self.next() {
            Some(t) if &t == want => Ok(()),
            Some(t) => refuse(format!(
                "expected {} but found {}",
                want.describe(),
                t.describe()
            )),
            None => refuse(format!("expected {} at the end", want.describe())),
        }
    }

    fn enter(&mut self) -> Result<(), ElError> {
        self.depth += 1;
        if self.depth > MAX_EL_DEPTH {
            return refuse(format!("nested deeper than {MAX_EL_DEPTH}"));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr, ElError> {
        self.enter()?;
        let mut left = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ElError> {
        let mut left = self.relation()?;
        while self.peek() == Some(&Token::And) {
            self.at += 1;
            let right = self.relation()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn relation(&mut self) -> Result<Expr, ElError> {
        let left = self.unary()?;
        match self.peek() {
            Some(Token::Op(op)) => {
                let op = *op;
                self.at += 1;
                let right = self.unary()?;
                Ok(Expr::Cmp(op, Box::new(left), Box::new(right)))
            }
            Some(Token::Ident(word)) if word == "matches" => {
                self.at += 1;
                let right = self.unary()?;
                Ok(Expr::Matches(Box::new(left), Box::new(right)))
            }
            _ => Ok(left),
        }
    }

    fn unary(&mut self) -> Result<Expr, ElError> {
        if self.peek() == Some(&Token::Not) {
            self.at += 1;
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, ElError> {
        let primary = match self.next() {
            Some(Token::Var(name)) => name,
            Some(Token::Str(s)) => return Ok(Expr::Str(s)),
            Some(Token::Int(n)) => return Ok(Expr::Int(n)),
            Some(Token::Ident(word)) if word == "true" => return Ok(Expr::Bool(true)),
            Some(Token::Ident(word)) if word == "false" => return Ok(Expr::Bool(false)),
            Some(Token::Ident(word)) if word == "null" => return Ok(Expr::Null),
            Some(Token::LParen) => {
                let inner = self.expr()?;
                self.expect(&Token::RParen)?;
                return Ok(inner);
            }
            Some(Token::Ident(word)) => {
                return refuse(format!(
                    "`{word}` is not a Gravitee variable (they start with `#`: #request, \
                     #context, #jwt)"
                ))
            }
            Some(t) => return refuse(format!("unexpected {}", t.describe())),
            None => return refuse("the expression ends too early"),
        };
        let mut steps = Vec::new();
        loop {
            match self.peek() {
                Some(Token::Dot) => {
                    self.at += 1;
                    let name = match self.next() {
                        Some(Token::Ident(name)) => name,
                        Some(t) => {
                            return refuse(format!(
                                "expected a name after `.`, found {}",
                                t.describe()
                            ))
                        }
                        None => return refuse("expected a name after `.`"),
                    };
                    if self.peek() == Some(&Token::LParen) {
                        self.at += 1;
                        let mut args = Vec::new();
                        if self.peek() != Some(&Token::RParen) {
                            loop {
                                args.push(self.expr()?);
                                if self.peek() == Some(&Token::Comma) {
                                    self.at += 1;
                                } else {
                                    break;
                                }
                            }
                        }
                        self.expect(&Token::RParen)?;
                        steps.push(Step::Call(name, args));
                    } else {
                        steps.push(Step::Field(name));
                    }
                }
                Some(Token::LBracket) => {
                    self.at += 1;
                    let index = self.expr()?;
                    self.expect(&Token::RBracket)?;
                    steps.push(Step::Index(index));
                }
                _ => break,
            }
        }
        Ok(Expr::Chain(primary, steps))
    }
}

// ---------------------------------------------------------------------------------------------
// Translation

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    /// A string value (a header's first value, the subject, the path…).
    Str,
    Int,
    /// A claim: any JSON type.
    Claim,
    /// `#request.headers['X']`: a list in Gravitee, only good for presence tests.
    HeaderList,
    /// `#request.headers`, `#context.attributes`, `#jwt.claims` themselves.
    Map,
    Null,
}

/// CEL text with what it denotes and how tightly it binds (higher binds tighter).
#[derive(Debug, Clone)]
struct Cel {
    text: String,
    kind: Kind,
    prec: u8,
    /// For presence tests (`!= null`): the CEL test that the value exists.
    presence: Option<String>,
}

/// CEL's conditional operator binds loosest of all.
const PREC_TERNARY: u8 = 0;
const PREC_OR: u8 = 1;
const PREC_AND: u8 = 2;
const PREC_REL: u8 = 3;
const PREC_UNARY: u8 = 4;
const PREC_ATOM: u8 = 5;

fn atom(text: String, kind: Kind) -> Cel {
    Cel {
        text,
        kind,
        prec: PREC_ATOM,
        presence: None,
    }
}

fn wrap(cel: &Cel, min: u8) -> String {
    if cel.prec < min {
        format!("({})", cel.text)
    } else {
        cel.text.clone()
    }
}

/// A CEL string literal: single quotes, with `\` and `'` escaped (and control characters, so
/// the CEL source stays on one line).
fn cel_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn literal_str(e: &Expr, what: &str) -> Result<String, ElError> {
    match e {
        Expr::Str(s) => Ok(s.clone()),
        _ => refuse(format!("{what} must be a quoted string")),
    }
}

fn boolean(cel: &Cel, what: &str) -> Result<(), ElError> {
    if cel.kind == Kind::Bool {
        Ok(())
    } else {
        refuse(format!("{what} `{}` is not a condition", cel.text))
    }
}

fn to_cel(e: &Expr) -> Result<Cel, ElError> {
    match e {
        Expr::Or(a, b) | Expr::And(a, b) => {
            let (op, prec) = if matches!(e, Expr::Or(..)) {
                ("||", PREC_OR)
            } else {
                ("&&", PREC_AND)
            };
            let (a, b) = (to_cel(a)?, to_cel(b)?);
            boolean(&a, &format!("the operand of `{op}`"))?;
            boolean(&b, &format!("the operand of `{op}`"))?;
            Ok(Cel {
                text: format!("{} {op} {}", wrap(&a, prec), wrap(&b, prec + 1)),
                kind: Kind::Bool,
                prec,
                presence: None,
            })
        }
        Expr::Not(inner) => {
            let inner = to_cel(inner)?;
            boolean(&inner, "the operand of `!`")?;
            Ok(Cel {
                text: format!("!{}", wrap(&inner, PREC_UNARY)),
                kind: Kind::Bool,
                prec: PREC_UNARY,
                presence: None,
            })
        }
        Expr::Cmp(op, a, b) => compare(op, &to_cel(a)?, &to_cel(b)?),
        Expr::Matches(target, regex) => {
            let target = to_cel(target)?;
            value(&target)?;
            let regex = literal_str(regex, "the pattern of `matches`")?;
            // Java's String.matches() must match the whole string; CEL's matches() searches.
            Ok(Cel {
                text: format!(
                    "{}.matches({})",
                    wrap(&target, PREC_ATOM),
                    cel_string(&format!("^(?:{regex})$"))
                ),
                kind: Kind::Bool,
                prec: PREC_ATOM,
                presence: None,
            })
        }
        Expr::Str(s) => Ok(atom(cel_string(s), Kind::Str)),
        Expr::Int(n) => Ok(atom(n.to_string(), Kind::Int)),
        Expr::Bool(b) => Ok(atom(b.to_string(), Kind::Bool)),
        Expr::Null => Ok(atom("null".into(), Kind::Null)),
        Expr::Chain(root, steps) => chain(root, steps),
    }
}

/// A value that can be compared (not a map, not a header's list of values).
fn value(cel: &Cel) -> Result<(), ElError> {
    match cel.kind {
        Kind::HeaderList => refuse(format!(
            "a header is a list of values in Gravitee EL: take the first with [0] (CEL: `{}`)",
            cel.text
        )),
        Kind::Map => refuse(format!(
            "`{}` is a whole map; index it with ['name']",
            cel.text
        )),
        Kind::Null => refuse("null can only be compared with `==` or `!=`"),
        _ => Ok(()),
    }
}

fn compare(op: &'static str, a: &Cel, b: &Cel) -> Result<Cel, ElError> {
    let bool_cel = |text: String, prec: u8| Cel {
        text,
        kind: Kind::Bool,
        prec,
        presence: None,
    };
    // `x != null` / `x == null`: presence of a header, attribute or claim.
    let other = match (a.kind, b.kind) {
        (Kind::Null, Kind::Null) => return refuse("`null == null` is not a condition"),
        (Kind::Null, _) => Some(b),
        (_, Kind::Null) => Some(a),
        _ => None,
    };
    if let Some(other) = other {
        let Some(present) = &other.presence else {
            return refuse(format!("`{}` cannot be compared with null", other.text));
        };
        return match op {
            "!=" => Ok(bool_cel(present.clone(), PREC_REL)),
            "==" => Ok(bool_cel(format!("!({present})"), PREC_UNARY)),
            _ => refuse(format!("null can only be compared with == or !=, not {op}")),
        };
    }
    value(a)?;
    value(b)?;
    Ok(bool_cel(
        format!("{} {op} {}", wrap(a, PREC_REL + 1), wrap(b, PREC_REL + 1)),
        PREC_REL,
    ))
}

fn index_key(steps: &[Step], i: usize) -> Option<&Expr> {
    match steps.get(i) {
        Some(Step::Index(e)) => Some(e),
        _ => None,
    }
}

/// Resolves `#root.steps…` into CEL.
fn chain(root: &str, steps: &[Step]) -> Result<Cel, ElError> {
    let (mut cel, mut rest) = match root {
        "request" => request(steps)?,
        "context" => context(steps)?,
        "jwt" => match steps.first() {
            Some(Step::Field(f)) if f == "claims" => {
                (claims_map(), steps.get(1..).unwrap_or_default())
            }
            _ => {
                return refuse(
                    "of #jwt only #jwt.claims is supported (CEL: auth.claims)".to_string(),
                )
            }
        },
        other => {
            return refuse(format!(
                "`#{other}` has no equivalent here (#request, #context.attributes and \
                 #jwt.claims have)"
            ))
        }
    };
    // Claims (and maps of them) may be indexed further; any value may get a string method.
    while let Some(step) = rest.first() {
        cel = match (cel.kind, step) {
            (Kind::Map | Kind::Claim, Step::Index(Expr::Str(key))) => {
                let text = format!("{}[{}]", cel.text, cel_string(key));
                Cel {
                    presence: Some(format!("{} in {}", cel_string(key), cel.text)),
                    ..atom(text, Kind::Claim)
                }
            }
            (Kind::Claim, Step::Index(Expr::Int(n))) => {
                atom(format!("{}[{n}]", cel.text), Kind::Claim)
            }
            (Kind::Map, Step::Call(m, args)) if m == "containsKey" => match args.as_slice() {
                [Expr::Str(key)] => Cel {
                    prec: PREC_REL,
                    ..atom(format!("{} in {}", cel_string(key), cel.text), Kind::Bool)
                },
                _ => return refuse("containsKey takes one quoted name"),
            },
            (_, Step::Call(method, args)) => string_method(&cel, method, args)?,
            (_, Step::Field(f)) => {
                return refuse(format!("`.{f}` after `{}` is not supported", cel.text))
            }
            (_, Step::Index(_)) => {
                return refuse(format!(
                    "`{}` cannot be indexed like that (use a quoted name)",
                    cel.text
                ))
            }
        };
        rest = rest.get(1..).unwrap_or_default();
    }
    Ok(cel)
}

fn claims_map() -> Cel {
    atom("auth.claims".into(), Kind::Map)
}

fn request(steps: &[Step]) -> Result<(Cel, &[Step]), ElError> {
    let rest = steps.get(1..).unwrap_or_default();
    let field = match steps.first() {
        Some(Step::Field(f)) => f.as_str(),
        _ => return refuse("#request needs a property: headers, path, method or remoteAddress"),
    };
    match field {
        "path" => Ok((atom("request.path".into(), Kind::Str), rest)),
        "method" => Ok((atom("request.method".into(), Kind::Str), rest)),
        "remoteAddress" => Ok((atom("request.client_ip".into(), Kind::Str), rest)),
        "headers" => headers(rest),
        "params" | "parameters" | "pathParameters" => refuse(format!(
            "#request.{field}: query and path parameters are not visible to conditions"
        )),
        other => refuse(format!(
            "#request.{other} has no equivalent (request.method, request.path, request.headers \
             and request.client_ip do)"
        )),
    }
}

fn headers(steps: &[Step]) -> Result<(Cel, &[Step]), ElError> {
    let rest = steps.get(1..).unwrap_or_default();
    let header = |name: &str| {
        let key = cel_string(&name.to_ascii_lowercase());
        (
            format!("request.headers[{key}]"),
            format!("{key} in request.headers"),
        )
    };
    match steps.first() {
        Some(Step::Index(Expr::Str(name))) => {
            let (text, present) = header(name);
            match index_key(steps, 1) {
                Some(Expr::Int(0)) => Ok((
                    Cel {
                        presence: Some(present),
                        ..atom(text, Kind::Str)
                    },
                    steps.get(2..).unwrap_or_default(),
                )),
                Some(_) => refuse(
                    "only a header's first value ([0]) is supported: CEL sees a repeated header \
                     as its values joined with \", \"",
                ),
                None => Ok((
                    Cel {
                        presence: Some(present),
                        ..atom(text, Kind::HeaderList)
                    },
                    rest,
                )),
            }
        }
        Some(Step::Call(m, args)) if m == "getFirst" || m == "get" => {
            let name = match args.as_slice() {
                [a] => literal_str(a, &format!("the argument of {m}"))?,
                _ => return refuse(format!("{m} takes one header name")),
            };
            let (text, present) = header(&name);
            let kind = if m == "getFirst" {
                Kind::Str
            } else {
                Kind::HeaderList
            };
            Ok((
                Cel {
                    presence: Some(present),
                    ..atom(text, kind)
                },
                rest,
            ))
        }
        Some(Step::Call(m, args)) if m == "containsKey" => {
            let name = match args.as_slice() {
                [a] => literal_str(a, "the argument of containsKey")?,
                _ => return refuse("containsKey takes one header name"),
            };
            let (_, present) = header(&name);
            Ok((
                Cel {
                    prec: PREC_REL,
                    ..atom(present, Kind::Bool)
                },
                rest,
            ))
        }
        None => Ok((atom("request.headers".into(), Kind::Map), rest)),
        Some(_) => refuse("index #request.headers with a quoted header name: ['X-Name'][0]"),
    }
}

fn context(steps: &[Step]) -> Result<(Cel, &[Step]), ElError> {
    match steps.first() {
        Some(Step::Field(f)) if f == "attributes" => {}
        _ => return refuse("of #context only #context.attributes['…'] is supported"),
    }
    let rest = steps.get(2..).unwrap_or_default();
    match index_key(steps, 1) {
        Some(Expr::Str(name)) => match name.as_str() {
            "user" => Ok((
                Cel {
                    presence: Some("auth.subject != ''".into()),
                    ..atom("auth.subject".into(), Kind::Str)
                },
                rest,
            )),
            "application" => Ok((
                Cel {
                    presence: Some("auth.client_id != ''".into()),
                    ..atom("auth.client_id".into(), Kind::Str)
                },
                rest,
            )),
            "jwt.claims" => Ok((claims_map(), rest)),
            other => refuse(format!(
                "the attribute '{other}' has no equivalent (user → auth.subject, application → \
                 auth.client_id, jwt.claims → auth.claims)"
            )),
        },
        _ => refuse("index #context.attributes with a quoted name: ['user']"),
    }
}

fn string_method(target: &Cel, method: &str, args: &[Expr]) -> Result<Cel, ElError> {
    value(target)?;
    let arg = match args {
        [a] => to_cel(a)?,
        _ => return refuse(format!("{method} takes one argument")),
    };
    value(&arg)?;
    let t = wrap(target, PREC_ATOM);
    let bool_atom = |text: String| atom(text, Kind::Bool);
    match method {
        "equals" => compare("==", target, &arg),
        "contains" if target.kind == Kind::Claim => {
            // A claim may be a list (roles) or a string (scope): EL's contains means membership
            // for the one and a substring for the other.
            Ok(Cel {
                prec: PREC_TERNARY,
                ..bool_atom(format!(
                    "type({0}) == list ? {1} in {0} : {0}.contains({1})",
                    target.text,
                    wrap(&arg, PREC_REL + 1)
                ))
            })
        }
        "contains" | "startsWith" | "endsWith" => {
            Ok(bool_atom(format!("{t}.{method}({})", arg.text)))
        }
        other => refuse(format!(
            "the method {other}() is not supported (contains, startsWith, endsWith, equals and \
             matches are)"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::acl::condition::{AuthInfo, Condition, Evaluator, McpFacts, RequestInfo};
    use std::sync::Arc;

    fn tr(el: &str) -> String {
        translate(el).unwrap_or_else(|e| panic!("{el}: {e}"))
    }

    #[test]
    fn common_forms_translate() {
        for (el, cel) in [
            (
                "{#context.attributes['user'] == 'x'}",
                "auth.subject == 'x'",
            ),
            (
                "{#request.headers['X-Plan'][0] == 'gold'}",
                "request.headers['x-plan'] == 'gold'",
            ),
            (
                "{ #request.headers.getFirst('X-Plan') eq \"gold\" }",
                "request.headers['x-plan'] == 'gold'",
            ),
            (
                "{#jwt.claims['scope'].contains('mcp:admin')}",
                "type(auth.claims['scope']) == list ? 'mcp:admin' in auth.claims['scope'] : auth.claims['scope'].contains('mcp:admin')",
            ),
            (
                "{#context.attributes['jwt.claims']['level'] >= 3}",
                "auth.claims['level'] >= 3",
            ),
            (
                "{#request.headers['X-A'][0] == 'a' && #request.headers['X-B'][0] != 'b' || #request.method == 'GET'}",
                "request.headers['x-a'] == 'a' && request.headers['x-b'] != 'b' || request.method == 'GET'",
            ),
            (
                "{#request.path == '/mcp' and (#context.attributes['user'] == 'a' or #context.attributes['user'] == 'b')}",
                "request.path == '/mcp' && (auth.subject == 'a' || auth.subject == 'b')",
            ),
            (
                "{#request.headers['X-Team'][0] matches 'blue|red'}",
                "request.headers['x-team'].matches('^(?:blue|red)$')",
            ),
            (
                "{not (#request.remoteAddress == '10.0.0.1')}",
                "!(request.client_ip == '10.0.0.1')",
            ),
            (
                "{!#request.headers.containsKey('X-Debug')}",
                "!('x-debug' in request.headers)",
            ),
            (
                "{#request.headers['X-Debug'] != null}",
                "'x-debug' in request.headers",
            ),
            (
                "{#jwt.claims['role'] == null}",
                "!('role' in auth.claims)",
            ),
            (
                "{#jwt.claims.containsKey('role') && #jwt.claims['role'] == 'admin'}",
                "'role' in auth.claims && auth.claims['role'] == 'admin'",
            ),
            (
                "{#context.attributes['application'].startsWith('ci-')}",
                "auth.client_id.startsWith('ci-')",
            ),
            ("{#request.method.equals('POST')}", "request.method == 'POST'"),
            (
                "{#jwt.claims['name'] == 'O''Brien\\x'}",
                "auth.claims['name'] == 'O\\'Brien\\\\x'",
            ),
        ] {
            assert!(is_el(el), "{el}");
            assert_eq!(tr(el), cel, "{el}");
        }
        assert!(!is_el("request.headers['x'] == 'a'"));
        assert!(!is_el("{'a': 1}['a'] == 1"));
    }

    #[test]
    fn everything_else_is_refused_with_a_cel_suggestion() {
        for (el, says) in [
            (
                "{#request.params['q'][0] == 'x'}",
                "query and path parameters",
            ),
            ("{#request.headers['X'] == 'a'}", "first with [0]"),
            ("{#request.headers['X'][1] == 'a'}", "first value"),
            ("{#api.properties['x'] == 'y'}", "#api"),
            ("{#context.attributes['plan'] == 'gold'}", "'plan'"),
            ("{#request.headers['X'][0]}", "not a condition"),
            (
                "{#request.headers['X'][0] + 'a' == 'b'}",
                "`+` is not supported",
            ),
            (
                "{#request.path == T(java.lang.Runtime).getRuntime()}",
                "Gravitee variable",
            ),
            (
                "{T(java.lang.Runtime).getRuntime().exec('x')}",
                "nothing around",
            ),
            ("{#request.path.toLowerCase() == 'a'}", "toLowerCase"),
            ("{#request.headers['X'][0] == 'a'", "nothing around"),
            ("{#request.path == 'a' ? 1 : 2}", "not supported"),
            ("{#request.path == 1.5}", "whole numbers"),
            ("{#request.path == 'unterminated}", "not closed"),
            ("{#request.path > null}", "null"),
        ] {
            let e = translate(el)
                .err()
                .unwrap_or_else(|| panic!("{el} translated"));
            let text = e.to_string();
            assert!(text.contains(says), "{el}: {text}");
            assert!(
                text.contains("write the condition in CEL instead"),
                "{text}"
            );
        }
        let deep = format!(
            "{{{}#request.path == 'a'{}}}",
            "(".repeat(200),
            ")".repeat(200)
        );
        assert!(translate(&deep).is_err());
    }

    /// Evaluates CEL over a small context through the ACL's own evaluator.
    fn eval(cel: &str, headers: &[(&str, &str)], auth: &AuthInfo) -> Result<bool, String> {
        let env = Arc::new(cel::Env::stdlib());
        let cond = Condition::compile(&env, cel)?;
        let req = RequestInfo {
            method: "POST",
            path: "/mcp",
            headers,
            client_ip: Some("10.0.0.1".parse().unwrap()),
            auth: Some(auth),
            connection: None,
        };
        Evaluator::new(&env, &req).eval(&cond, McpFacts::default())
    }

    #[test]
    fn translations_evaluate_as_gravitee_would() {
        let mut claims = serde_json::Map::new();
        claims.insert("scope".into(), "mcp:read mcp:admin".into());
        claims.insert("roles".into(), serde_json::json!(["ops", "dev"]));
        claims.insert("level".into(), 3.into());
        let auth = AuthInfo {
            subject: "alice".into(),
            client_id: "ci-bot".into(),
            scopes: vec![],
            claims,
        };
        let headers = [("X-Plan", "gold")];
        for (el, want) in [
            ("{#jwt.claims['scope'].contains('mcp:admin')}", true),
            ("{#jwt.claims['scope'].contains('mcp:write')}", false),
            ("{#jwt.claims['roles'].contains('ops')}", true),
            ("{#jwt.claims['roles'].contains('op')}", false),
            ("{#request.headers['X-Plan'][0] == 'gold'}", true),
            ("{#request.headers['x-plan'][0] matches 'gol'}", false),
            ("{#request.headers['x-plan'][0] matches 'gol.'}", true),
            ("{#request.headers['X-Other'] == null}", true),
            (
                "{#context.attributes['user'] == 'alice' and #jwt.claims['level'] > 2}",
                true,
            ),
            (
                "{#context.attributes['application'].startsWith('ci-')}",
                true,
            ),
            ("{#request.remoteAddress == '10.0.0.1'}", true),
        ] {
            assert_eq!(
                eval(&tr(el), &headers, &auth),
                Ok(want),
                "{el} → {}",
                tr(el)
            );
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A generated EL condition, with how Gravitee would evaluate it.
        #[derive(Debug, Clone)]
        enum Gen {
            Header(String, &'static str, String),
            HeaderPresent(String, bool),
            Subject(&'static str, String),
            Claim(String, &'static str, String),
            And(Box<Gen>, Box<Gen>),
            Or(Box<Gen>, Box<Gen>),
            Not(Box<Gen>),
        }

        fn quote(s: &str) -> String {
            format!("'{}'", s.replace('\'', "''"))
        }

        impl Gen {
            fn el(&self) -> String {
                match self {
                    Gen::Header(h, op, v) => {
                        format!("#request.headers[{}][0] {op} {}", quote(h), quote(v))
                    }
                    Gen::HeaderPresent(h, true) => {
                        format!("#request.headers.containsKey({})", quote(h))
                    }
                    Gen::HeaderPresent(h, false) => {
                        format!("#request.headers[{}] == null", quote(h))
                    }
                    Gen::Subject(op, v) => {
                        format!("#context.attributes['user'] {op} {}", quote(v))
                    }
                    Gen::Claim(c, op, v) => format!("#jwt.claims[{}] {op} {}", quote(c), quote(v)),
                    Gen::And(a, b) => format!("({}) and ({})", a.el(), b.el()),
                    Gen::Or(a, b) => format!("({}) || ({})", a.el(), b.el()),
                    Gen::Not(a) => format!("!({})", a.el()),
                }
            }

            /// The answer over the context: each comparison as Gravitee evaluates it, `None`
            /// where it reads an absent header or claim (Gravitee throws or compares null; CEL
            /// fails on the missing key), combined with CEL's logic (an error is absorbed by a
            /// deciding `false` in `&&` or `true` in `||`).
            fn holds(
                &self,
                headers: &[(String, String)],
                subject: &str,
                claims: &[(String, String)],
            ) -> Option<bool> {
                let cmp = |op: &str, a: &str, b: &str| match op {
                    "==" => a == b,
                    "!=" => a != b,
                    "<" => a < b,
                    _ => a >= b,
                };
                let header = |h: &str| {
                    headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(h))
                        .map(|(_, v)| v.clone())
                };
                match self {
                    Gen::Header(h, op, v) => header(h).map(|x| cmp(op, &x, v)),
                    Gen::HeaderPresent(h, present) => Some(header(h).is_some() == *present),
                    Gen::Subject(op, v) => Some(cmp(op, subject, v)),
                    Gen::Claim(c, op, v) => claims
                        .iter()
                        .find(|(n, _)| n == c)
                        .map(|(_, x)| cmp(op, x, v)),
                    Gen::And(a, b) => match (
                        a.holds(headers, subject, claims),
                        b.holds(headers, subject, claims),
                    ) {
                        (Some(false), _) | (_, Some(false)) => Some(false),
                        (Some(true), Some(true)) => Some(true),
                        _ => None,
                    },
                    Gen::Or(a, b) => match (
                        a.holds(headers, subject, claims),
                        b.holds(headers, subject, claims),
                    ) {
                        (Some(true), _) | (_, Some(true)) => Some(true),
                        (Some(false), Some(false)) => Some(false),
                        _ => None,
                    },
                    Gen::Not(a) => a.holds(headers, subject, claims).map(|x| !x),
                }
            }
        }

        fn name() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("x-a".to_string()),
                Just("X-B".to_string()),
                Just("x-c".to_string())
            ]
        }

        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("a".to_string()),
                Just("b".to_string()),
                Just("it's".to_string()),
                Just("back\\slash".to_string()),
                "[a-c']{0,3}",
            ]
        }

        fn op() -> impl Strategy<Value = &'static str> {
            prop_oneof![Just("=="), Just("!="), Just("<"), Just(">=")]
        }

        fn gen() -> impl Strategy<Value = Gen> {
            let leaf = prop_oneof![
                (name(), op(), text()).prop_map(|(h, o, v)| Gen::Header(h, o, v)),
                (name(), any::<bool>()).prop_map(|(h, p)| Gen::HeaderPresent(h, p)),
                (op(), text()).prop_map(|(o, v)| Gen::Subject(o, v)),
                (
                    prop_oneof![Just("role".to_string()), Just("team".to_string())],
                    op(),
                    text()
                )
                    .prop_map(|(c, o, v)| Gen::Claim(c, o, v)),
            ];
            leaf.prop_recursive(4, 16, 2, |inner| {
                prop_oneof![
                    (inner.clone(), inner.clone())
                        .prop_map(|(a, b)| Gen::And(Box::new(a), Box::new(b))),
                    (inner.clone(), inner.clone())
                        .prop_map(|(a, b)| Gen::Or(Box::new(a), Box::new(b))),
                    inner.prop_map(|a| Gen::Not(Box::new(a))),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// The translated CEL evaluates each comparison as Gravitee does, keeps the
            /// structure, and fails (the rule does not apply) where a comparison reads a
            /// missing header or claim and nothing else decides.
            #[test]
            fn translation_preserves_meaning(
                g in gen(),
                headers in proptest::collection::vec((name(), text()), 0..3),
                subject in text(),
                claims in proptest::collection::vec((prop_oneof![Just("role".to_string()), Just("team".to_string())], text()), 0..2),
            ) {
                // One value per header name (Gravitee's [0] and CEL's joined value agree then).
                let mut unique: Vec<(String, String)> = Vec::new();
                for (n, v) in headers {
                    if !unique.iter().any(|(m, _)| m.eq_ignore_ascii_case(&n)) {
                        unique.push((n, v));
                    }
                }
                let mut claim_map = serde_json::Map::new();
                for (c, v) in &claims {
                    claim_map.insert(c.clone(), v.clone().into());
                }
                let claims: Vec<(String, String)> = claim_map
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect();
                let auth = AuthInfo { subject: subject.clone(), client_id: String::new(), scopes: vec![], claims: claim_map };
                let el = format!("{{{}}}", g.el());
                let cel = translate(&el).map_err(|e| TestCaseError::fail(format!("{el}: {e}")))?;
                let pairs: Vec<(&str, &str)> = unique.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                let got = eval(&cel, &pairs, &auth);
                match g.holds(&unique, &subject, &claims) {
                    Some(want) => prop_assert_eq!(got, Ok(want), "{} → {}", el, cel),
                    None => prop_assert!(got.is_err(), "{} → {}: {:?} over a missing key", el, cel, got),
                }
            }

            /// Any text inside `{#…}` is translated or refused, never a panic, and what is
            /// translated compiles as CEL.
            #[test]
            fn arbitrary_input_never_panics(body in "[#a-z'\\[\\]().=!<>&| 0-9,\"]{0,60}") {
                let source = format!("{{#{body}}}");
                if let Ok(cel) = translate(&source) {
                    let env = Arc::new(cel::Env::stdlib());
                    prop_assert!(Condition::compile(&env, &cel).is_ok(), "{} → {}", source, cel);
                }
            }
        }
    }
}
