//! The executor: walks a parsed template with a dot value, a variable stack
//! and the set's functions, writing output as Go's `text/template` does.

use crate::parse::{Arg, Command, Control, List, Node, Pipe};
use crate::value::{Value, no_value};
use crate::{Entry, Error, MissingKey, Templates, Tmpl};
use std::sync::Arc;

/// Deepest recursion (template calls, nested control structures and
/// parenthesized pipelines together) before execution stops with an error.
/// Go allows 100000 template calls on its growable stacks; Rust threads
/// (2 MiB for tokio workers and test threads) need a bound that keeps the
/// stack well inside that. Measured with `examples`-style runs of a
/// self-recursive template: about 8 KiB per level in debug builds and under
/// 1 KiB in release, so 150 levels stay under 1.3 MiB in the worst case.
/// Real templates nest a handful of levels.
const MAX_DEPTH: usize = 150;

/// Most nodes, range iterations and function calls one execution may run,
/// so that a template calling itself twice per level cannot run for ages.
const MAX_STEPS: u64 = 5_000_000;

/// Largest output one execution may produce.
const MAX_OUTPUT: usize = 32 << 20;

/// Executes `tmpl` from `set` with `data` as dot and `$`.
pub(crate) fn execute(set: &Templates, tmpl: &Arc<Tmpl>, data: &Value) -> Result<String, Error> {
    let mut state = State {
        set,
        tmpl: tmpl.clone(),
        vars: vec![("$".to_string(), data.clone())],
        out: String::new(),
        depth: 0,
        steps: 0,
    };
    state.walk_list(data, &tmpl.list)?;
    Ok(state.out)
}

struct State<'a> {
    set: &'a Templates,
    /// The template being executed, for error positions.
    tmpl: Arc<Tmpl>,
    vars: Vec<(String, Value)>,
    out: String,
    depth: usize,
    steps: u64,
}

/// Where an error is reported: a position and Go's text for the node.
struct Site {
    pos: usize,
    ctx: String,
}

impl Site {
    /// The site of `$var.A.B` (or `.A.B` when `var` is empty).
    fn field(pos: usize, var: &str, fields: &[String]) -> Site {
        let mut ctx = var.to_string();
        for f in fields {
            ctx.push('.');
            ctx.push_str(f);
        }
        Site { pos, ctx }
    }
}

/// What a list walk ended with: normally, or by `{{break}}`/`{{continue}}`.
#[derive(PartialEq, Eq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

/// Go's error context: the node's text.
fn context(text: &str) -> String {
    text.to_string()
}

impl State<'_> {
    fn error(&self, pos: usize, ctx: &str, message: impl Into<String>) -> Error {
        Error::at(
            &self.tmpl,
            pos,
            format!(
                "executing {:?} at <{}>: {}",
                self.tmpl.name,
                context(ctx),
                message.into()
            ),
        )
    }

    fn step(&mut self, pos: usize) -> Result<(), Error> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(self.error(
                pos,
                "",
                format!("template execution exceeded {MAX_STEPS} steps"),
            ));
        }
        Ok(())
    }

    fn enter(&mut self, pos: usize) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error::at(
                &self.tmpl,
                pos,
                format!("exceeded maximum template depth ({MAX_DEPTH})"),
            ));
        }
        Ok(())
    }

    fn write(&mut self, pos: usize, text: &str) -> Result<(), Error> {
        if self.out.len() + text.len() > MAX_OUTPUT {
            return Err(self.error(
                pos,
                "",
                format!("template output exceeds {MAX_OUTPUT} bytes"),
            ));
        }
        self.out.push_str(text);
        Ok(())
    }

    fn walk_list(&mut self, dot: &Value, list: &List) -> Result<Flow, Error> {
        for node in list {
            let flow = self.walk(dot, node)?;
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn walk(&mut self, dot: &Value, node: &Node) -> Result<Flow, Error> {
        match node {
            Node::Text(text) => {
                self.step(0)?;
                self.write(0, text)?;
            }
            Node::Action(pipe) => {
                self.step(pipe.pos)?;
                let value = self.eval_pipeline(dot, pipe, true)?;
                if pipe.decl.is_empty() {
                    let text = print_value(&value);
                    self.write(pipe.pos, &text)?;
                }
            }
            Node::If(control) | Node::With(control) => {
                self.step(control.pos)?;
                self.enter(control.pos)?;
                let mark = self.vars.len();
                let value = self.eval_pipeline(dot, &control.pipe, true)?;
                let is_with = matches!(node, Node::With(_));
                let flow = if value.truthy() {
                    let new_dot = if is_with { value } else { dot.clone() };
                    self.walk_list(&new_dot, &control.list)?
                } else if let Some(else_list) = &control.else_list {
                    self.walk_list(dot, else_list)?
                } else {
                    Flow::Normal
                };
                self.vars.truncate(mark);
                self.depth -= 1;
                return Ok(flow);
            }
            Node::Range(control) => {
                self.step(control.pos)?;
                self.enter(control.pos)?;
                let flow = self.walk_range(dot, control)?;
                self.depth -= 1;
                return Ok(flow);
            }
            Node::Template { pos, name, pipe } => {
                self.step(*pos)?;
                let new_dot = match pipe {
                    Some(pipe) => self.eval_pipeline(dot, pipe, true)?,
                    None => Value::Nil,
                };
                self.call_template(
                    *pos,
                    name,
                    &new_dot,
                    &format!("{{{{template {name:?}}}}}"),
                    false,
                )?;
            }
            Node::Break => return Ok(Flow::Break),
            Node::Continue => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    /// Runs the template `name` with `dot`, writing to the output; with
    /// `capture`, returns its output instead of writing it.
    fn call_template(
        &mut self,
        pos: usize,
        name: &str,
        dot: &Value,
        ctx: &str,
        capture: bool,
    ) -> Result<String, Error> {
        let Some(tmpl) = self.set.get(name).cloned() else {
            return Err(self.error(pos, ctx, format!("template {name:?} not defined")));
        };
        self.enter(pos)?;
        let saved_vars = std::mem::replace(&mut self.vars, vec![("$".to_string(), dot.clone())]);
        let saved_tmpl = std::mem::replace(&mut self.tmpl, tmpl.clone());
        let saved_out = if capture {
            Some(std::mem::take(&mut self.out))
        } else {
            None
        };
        let result = self.walk_list(dot, &tmpl.list);
        self.vars = saved_vars;
        self.tmpl = saved_tmpl;
        self.depth -= 1;
        let captured = match saved_out {
            Some(out) => std::mem::replace(&mut self.out, out),
            None => String::new(),
        };
        result?;
        if capture && self.out.len() + captured.len() > MAX_OUTPUT {
            return Err(self.error(
                pos,
                ctx,
                format!("template output exceeds {MAX_OUTPUT} bytes"),
            ));
        }
        Ok(captured)
    }

    fn walk_range(&mut self, dot: &Value, control: &Control) -> Result<Flow, Error> {
        let pipe = &control.pipe;
        let value = self.eval_pipeline(dot, pipe, false)?;
        // Declared range variables live for the whole range; each
        // iteration sets them and drops what the body declared.
        let mark_outer = self.vars.len();
        if !pipe.is_assign {
            for name in &pipe.decl {
                self.vars.push((name.clone(), Value::Nil));
            }
        }
        let mark = self.vars.len();
        // Index and element per iteration; ranging over an int is lazy so
        // a huge count costs nothing before the step limit stops it.
        type Items = Box<dyn Iterator<Item = (Value, Value)>>;
        let items: Items = match &value {
            Value::List(list) => {
                let list = list.clone();
                Box::new(
                    (0..list.len())
                        .filter_map(move |i| Some((Value::Int(i as i64), list.get(i)?.clone()))),
                )
            }
            Value::Map(map) => {
                let entries: Vec<(Value, Value)> = map
                    .iter()
                    .map(|(k, v)| (Value::Str(k.clone()), v.clone()))
                    .collect();
                Box::new(entries.into_iter())
            }
            Value::Int(n) => {
                if pipe.decl.len() > 1 {
                    return Err(self.error(
                        pipe.pos,
                        "range",
                        format!("can't use {n} to iterate over more than one variable"),
                    ));
                }
                Box::new((0..(*n).max(0)).map(|i| (Value::Int(i), Value::Int(i))))
            }
            Value::Nil => Box::new(std::iter::empty()),
            Value::Object(o) if o.is_no_value() => Box::new(std::iter::empty()),
            Value::Object(o) if o.entries().is_some() => {
                let mut entries = o.entries().unwrap_or_default();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Box::new(entries.into_iter().map(|(k, v)| (Value::Str(k), v)))
            }
            Value::Object(o) => match o.items() {
                Some(items) => Box::new(
                    items
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| (Value::Int(i as i64), v)),
                ),
                None => return Err(self.range_error(pipe, &value)),
            },
            other => return Err(self.range_error(pipe, other)),
        };
        let mut items = items.peekable();
        let mut flow = Flow::Normal;
        if items.peek().is_none() {
            if let Some(else_list) = &control.else_list {
                flow = self.walk_list(dot, else_list)?;
            }
        } else {
            for (index, elem) in items {
                self.step(control.pos)?;
                if let Err(e) = self.set_range_vars(pipe, mark_outer, index, elem.clone()) {
                    return Err(self.error(pipe.pos, "range", e));
                }
                let result = self.walk_list(&elem, &control.list)?;
                self.vars.truncate(mark);
                if result == Flow::Break {
                    break;
                }
            }
        }
        self.vars.truncate(mark_outer);
        // `break` and `continue` inside the body stop at this range; from
        // the else list they belong to an enclosing range.
        Ok(flow)
    }

    /// Go reports a bad range value at the last node it evaluated, which
    /// for the usual `range .Field` is the pipeline's last command.
    fn range_error(&self, pipe: &Pipe, value: &Value) -> Error {
        let (pos, ctx) = match pipe.cmds.last() {
            Some(cmd) => (cmd.pos, cmd.text.as_str()),
            None => (pipe.pos, "range"),
        };
        let shown = crate::fmt::format_v(value);
        self.error(pos, ctx, format!("range can't iterate over {shown}"))
    }

    fn set_range_vars(
        &mut self,
        pipe: &Pipe,
        mark_outer: usize,
        index: Value,
        elem: Value,
    ) -> Result<(), String> {
        match (pipe.decl.len(), pipe.is_assign) {
            (0, _) => {}
            (1, false) => {
                if let Some(slot) = self.vars.get_mut(mark_outer) {
                    slot.1 = elem;
                }
            }
            (_, false) => {
                if let Some(slot) = self.vars.get_mut(mark_outer) {
                    slot.1 = index;
                }
                if let Some(slot) = self.vars.get_mut(mark_outer + 1) {
                    slot.1 = elem;
                }
            }
            (1, true) => self.set_var(&pipe.decl[0], elem)?,
            (_, true) => {
                self.set_var(&pipe.decl[0], index)?;
                self.set_var(&pipe.decl[1], elem)?;
            }
        }
        Ok(())
    }

    fn set_var(&mut self, name: &str, value: Value) -> Result<(), String> {
        match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => {
                slot.1 = value;
                Ok(())
            }
            None => Err(format!("undefined variable: {name}")),
        }
    }

    fn var(&self, pos: usize, name: &str) -> Result<Value, Error> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => Err(self.error(pos, name, format!("undefined variable: {name}"))),
        }
    }

    /// Evaluates a pipeline; with `declare`, its variables are declared or
    /// assigned (range declares its own per iteration).
    fn eval_pipeline(&mut self, dot: &Value, pipe: &Pipe, declare: bool) -> Result<Value, Error> {
        self.enter(pipe.pos)?;
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            self.step(cmd.pos)?;
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        self.depth -= 1;
        let value = value.unwrap_or(Value::Nil);
        if declare {
            for name in &pipe.decl {
                if pipe.is_assign {
                    if let Err(e) = self.set_var(name, value.clone()) {
                        let (pos, ctx) = pipe
                            .cmds
                            .last()
                            .map_or((pipe.pos, ""), |c| (c.pos, c.text.as_str()));
                        return Err(self.error(pos, ctx, e));
                    }
                } else {
                    self.vars.push((name.clone(), value.clone()));
                }
            }
        }
        Ok(value)
    }

    fn eval_command(
        &mut self,
        dot: &Value,
        cmd: &Command,
        last: Option<Value>,
    ) -> Result<Value, Error> {
        let Some(first) = cmd.args.first() else {
            return Err(self.error(cmd.pos, &cmd.text, "empty command"));
        };
        let rest = &cmd.args[1..];
        match first {
            Arg::Field(pos, fields) => {
                let site = Site::field(*pos, "", fields);
                self.eval_field_chain(dot, dot.clone(), fields, &site, cmd, rest, last)
            }
            Arg::Var(pos, name, fields) => {
                let value = self.var(cmd.pos, name)?;
                if fields.is_empty() {
                    self.not_a_function(cmd, rest, &last)?;
                    return Ok(value);
                }
                let site = Site::field(*pos, name, fields);
                self.eval_field_chain(dot, value, fields, &site, cmd, rest, last)
            }
            Arg::Chain(term, fields) => {
                let receiver = self.eval_arg(dot, term, cmd)?;
                let site = Site {
                    pos: cmd.pos,
                    ctx: cmd.text.clone(),
                };
                self.eval_field_chain(dot, receiver, fields, &site, cmd, rest, last)
            }
            Arg::Ident(name) => self.eval_function(dot, name, cmd, rest, last),
            // Go accepts `nil` only as an argument.
            Arg::Nil => Err(self.error(cmd.pos, &cmd.text, "nil is not a command")),
            other => {
                self.not_a_function(cmd, rest, &last)?;
                self.eval_arg(dot, other, cmd)
            }
        }
    }

    fn not_a_function(
        &self,
        cmd: &Command,
        rest: &[Arg],
        last: &Option<Value>,
    ) -> Result<(), Error> {
        if !rest.is_empty() || last.is_some() {
            let name = cmd.text.split_whitespace().next().unwrap_or("");
            return Err(self.error(
                cmd.pos,
                name,
                format!("can't give argument to non-function {name}"),
            ));
        }
        Ok(())
    }

    fn eval_arg(&mut self, dot: &Value, arg: &Arg, cmd: &Command) -> Result<Value, Error> {
        Ok(match arg {
            Arg::Field(pos, fields) => {
                let site = Site::field(*pos, "", fields);
                self.eval_field_chain(dot, dot.clone(), fields, &site, cmd, &[], None)?
            }
            Arg::Dot => dot.clone(),
            Arg::Nil => Value::Nil,
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Int(i) => Value::Int(*i),
            Arg::Float(f) => Value::Float(*f),
            Arg::Str(s) => Value::Str(s.clone()),
            Arg::Var(pos, name, fields) => {
                let value = self.var(cmd.pos, name)?;
                if fields.is_empty() {
                    value
                } else {
                    let site = Site::field(*pos, name, fields);
                    self.eval_field_chain(dot, value, fields, &site, cmd, &[], None)?
                }
            }
            Arg::Ident(name) => self.eval_function(dot, name, cmd, &[], None)?,
            Arg::Pipe(pipe) => self.eval_pipeline(dot, pipe, true)?,
            Arg::Chain(term, fields) => {
                let receiver = self.eval_arg(dot, term, cmd)?;
                let site = Site {
                    pos: cmd.pos,
                    ctx: cmd.text.clone(),
                };
                self.eval_field_chain(dot, receiver, fields, &site, cmd, &[], None)?
            }
        })
    }

    fn eval_args(
        &mut self,
        dot: &Value,
        args: &[Arg],
        cmd: &Command,
        last: Option<Value>,
    ) -> Result<Vec<Value>, Error> {
        let mut values = Vec::with_capacity(args.len() + 1);
        for arg in args {
            values.push(self.eval_arg(dot, arg, cmd)?.into_arg());
        }
        if let Some(last) = last {
            values.push(last.into_arg());
        }
        Ok(values)
    }

    /// Evaluates `.A.B.C args`: every field but the last is read plainly;
    /// the last one gets the arguments (a method call) if there are any.
    #[allow(
        clippy::too_many_arguments,
        reason = "the receiver, the error site and the operands are all needed; \
                  a struct for them would only move the same names around"
    )]
    fn eval_field_chain(
        &mut self,
        dot: &Value,
        mut receiver: Value,
        fields: &[String],
        site: &Site,
        cmd: &Command,
        args: &[Arg],
        last: Option<Value>,
    ) -> Result<Value, Error> {
        let n = fields.len();
        for (i, name) in fields.iter().enumerate() {
            if i + 1 < n {
                receiver = self.eval_field(dot, receiver, name, site, cmd, &[], None)?;
            } else {
                return self.eval_field(dot, receiver, name, site, cmd, args, last);
            }
        }
        Ok(receiver)
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "as for eval_field_chain, whose arguments it receives"
    )]
    fn eval_field(
        &mut self,
        dot: &Value,
        receiver: Value,
        name: &str,
        site: &Site,
        cmd: &Command,
        args: &[Arg],
        last: Option<Value>,
    ) -> Result<Value, Error> {
        let has_args = !args.is_empty() || last.is_some();
        match &receiver {
            Value::Object(o) if o.is_no_value() => Ok(no_value()),
            Value::Object(o) => {
                let values = self.eval_args(dot, args, cmd, last)?;
                if let Some(result) = o.method(name, &values) {
                    return result.map_err(|e| {
                        self.error(site.pos, &site.ctx, format!("error calling {name}: {e}"))
                    });
                }
                match o.field(name) {
                    Some(_) if has_args => Err(self.error(
                        site.pos,
                        &site.ctx,
                        format!("{name} has arguments but cannot be invoked as function"),
                    )),
                    Some(v) => Ok(v),
                    None if o.entries().is_some() && !has_args => {
                        Ok(match self.set.options().missing_key {
                            MissingKey::Default => no_value(),
                            MissingKey::Zero => Value::Str(String::new()),
                        })
                    }
                    None => Err(self.error(
                        site.pos,
                        &site.ctx,
                        format!(
                            "can't evaluate field {name} in type {}",
                            receiver.type_name()
                        ),
                    )),
                }
            }
            Value::Map(map) => {
                if has_args {
                    return Err(self.error(
                        site.pos,
                        &site.ctx,
                        format!("{name} is not a method but has arguments"),
                    ));
                }
                match map.get(name) {
                    Some(v) => Ok(v.clone()),
                    None => Ok(match self.set.options().missing_key {
                        MissingKey::Default => no_value(),
                        MissingKey::Zero => crate::value::zero_for_map(map),
                    }),
                }
            }
            // Go's nil data reads as "no value" all the way down.
            Value::Nil => Ok(no_value()),
            other => Err(self.error(
                site.pos,
                &site.ctx,
                format!("can't evaluate field {name} in type {}", other.type_name()),
            )),
        }
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        name: &str,
        cmd: &Command,
        args: &[Arg],
        last: Option<Value>,
    ) -> Result<Value, Error> {
        let Some(entry) = self.set.funcs().get(name).cloned() else {
            return Err(self.error(cmd.pos, &cmd.text, format!("function {name:?} not defined")));
        };
        match entry {
            Entry::And | Entry::Or => {
                let is_and = matches!(entry, Entry::And);
                let total = args.len() + usize::from(last.is_some());
                if total == 0 {
                    return Err(self.error(
                        cmd.pos,
                        name,
                        format!("wrong number of args for {name}: want at least 1 got 0"),
                    ));
                }
                let mut value = Value::Nil;
                for arg in args {
                    // A `nil` literal reaches `and`/`or` as Go's invalid
                    // value, which prints as `<no value>`.
                    value = match arg {
                        Arg::Nil => no_value(),
                        _ => self.eval_arg(dot, arg, cmd)?.into_arg(),
                    };
                    if value.truthy() != is_and {
                        return Ok(value);
                    }
                }
                if let Some(last) = last {
                    value = last.into_arg();
                }
                Ok(value)
            }
            Entry::Tmpl => {
                let values = self.eval_args(dot, args, cmd, last)?;
                let [Value::Str(tmpl_name), data] = values.as_slice() else {
                    return Err(self.error(
                        cmd.pos,
                        &cmd.text,
                        "error calling tmpl: want a template name and data",
                    ));
                };
                let out = self.call_template(cmd.pos, tmpl_name, data, &cmd.text, true)?;
                Ok(Value::Str(out))
            }
            Entry::Plain(func) => {
                let values = self.eval_args(dot, args, cmd, last)?;
                func(&values).map_err(|e| {
                    if e.starts_with("wrong number of args") {
                        self.error(cmd.pos, name, e)
                    } else if e.starts_with("wrong type for value") {
                        self.error(cmd.pos, &cmd.text, e)
                    } else {
                        self.error(cmd.pos, &cmd.text, format!("error calling {name}: {e}"))
                    }
                })
            }
        }
    }
}

/// How `{{ value }}` prints: Go's `fmt.Print`, with a missing value as
/// `<no value>`.
fn print_value(value: &Value) -> String {
    crate::fmt::format_v(value)
}
