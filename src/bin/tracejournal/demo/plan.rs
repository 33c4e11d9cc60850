//! Each demo agent's session, generated turn by turn: Claude Code hook
//! payloads as an agent posts them, plus a generation span per model call.

use super::data::{code_lines, commands, Lang, Project, FOLLOW_UPS, MODELS, PROJECTS, TASKS};
use super::rng::Rng;

/// Demo agent `index`'s generator.
fn agent_rng(index: usize) -> Rng {
    Rng::new(0x7ace_d00d_0000_0000 ^ (index as u64).wrapping_mul(0x1000_0001))
}

/// Demo agent `index`'s session id: a UUIDv4, as Claude Code uses.
pub(super) fn demo_session_id(index: usize) -> String {
    let mut rng = agent_rng(index);
    let (a, b) = (rng.next(), rng.next());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        8 + (b >> 62),
        (b >> 48) & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

/// One demo agent's session: JSON lines, and where it can die.
pub(super) struct AgentPlan {
    pub(super) lines: Vec<String>,
    /// The line after which the agent dies mid-turn (a tool call started).
    pub(super) crash_at: Option<usize>,
    /// That tool's name.
    pub(super) crash_tool: Option<String>,
    /// The line after which the agent is still working (between two tool
    /// calls) when its process dies.
    pub(super) pause_at: Option<usize>,
}

/// A JSON object with its members in this order (hook payloads read best
/// in the order agents send them).
fn ordered(members: &[(&str, serde_json::Value)]) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&serde_json::Value::from(*k).to_string());
        s.push(':');
        s.push_str(&v.to_string());
    }
    s.push('}');
    s
}

/// One tool call, as `PlanBuilder::pick_tool` drew it.
struct ToolUse {
    tool: &'static str,
    input: serde_json::Value,
    response: serde_json::Value,
    /// The error text, if the call failed.
    failed: Option<String>,
    /// How long it took, in milliseconds.
    duration: u64,
}

/// Builds one agent's session, turn by turn.
struct PlanBuilder {
    rng: Rng,
    session: String,
    project: &'static Project,
    base: Vec<(&'static str, serde_json::Value)>,
    model: &'static str,
    lines: Vec<String>,
    generations: u64,
    /// (line index, tool name) of each PreToolUse of the main agent.
    pre_tools: Vec<(usize, String)>,
    /// Line index of each PostToolUse of the main agent.
    post_tools: Vec<usize>,
    agents: u64,
}

impl PlanBuilder {
    fn hook(&mut self, name: &str, extra: Vec<(&str, serde_json::Value)>) -> usize {
        let mut members: Vec<(&str, serde_json::Value)> = self.base.clone();
        members.push(("hook_event_name", name.into()));
        members.extend(extra);
        self.lines.push(ordered(&members));
        self.lines.len() - 1
    }

    fn typed(&mut self, value: serde_json::Value) {
        self.lines.push(value.to_string());
    }

    fn tool_id(&mut self) -> String {
        format!("toolu_01{}", self.rng.base62(22))
    }

    fn file_content(&mut self, min: usize, max: usize) -> (String, usize) {
        let code = code_lines(self.project.lang);
        let want = self.rng.range(min as u64, max as u64) as usize;
        let mut text = String::new();
        let mut n = 0;
        let mut i = self.rng.next() as usize % code.len();
        while text.len() < want {
            text.push_str(code[i % code.len()]);
            text.push('\n');
            i += 1;
            n += 1;
        }
        (text, n)
    }

    /// A generation span: the model call that asked for the next tools.
    fn generation(&mut self, last: bool) {
        self.generations += 1;
        let span = format!("gen-{}", self.generations);
        let (session, model) = (self.session.clone(), self.model);
        self.typed(serde_json::json!({
            "type": "span_start", "session": session, "span": span, "kind": "generation",
            "model": {"modelId": model, "providerId": "anthropic"},
        }));
        let input = self.rng.range(3, 2_500);
        let cache_read = 9_000 + self.generations * self.rng.range(400, 1_200);
        let cache_write = self.rng.range(300, 4_000);
        let output = self.rng.range(60, 1_800);
        let (pin, pout, pcr, pcw) = if model.contains("opus") {
            (15.0, 75.0, 1.5, 18.75)
        } else if model.contains("haiku") {
            (1.0, 5.0, 0.1, 1.25)
        } else {
            (3.0, 15.0, 0.3, 3.75)
        };
        let cost = (input as f64 * pin
            + output as f64 * pout
            + cache_read as f64 * pcr
            + cache_write as f64 * pcw)
            / 1e6;
        let cost = (cost * 1e6).round() / 1e6;
        self.typed(serde_json::json!({
            "type": "span_end", "session": session, "span": span,
            "tokens": {"input": input, "output": output, "cacheRead": cache_read, "cacheWrite": cache_write},
            "cost": cost,
            "finish_reason": if last { "end_turn" } else { "tool_use" },
        }));
    }

    /// One tool call: PreToolUse, then PostToolUse or PostToolUseFailure.
    fn tool_call(&mut self, agent: Option<(&str, &str)>) {
        let ToolUse {
            tool,
            input,
            response,
            failed,
            duration,
        } = self.pick_tool();
        let id = self.tool_id();
        let mut agent_fields: Vec<(&str, serde_json::Value)> = Vec::new();
        if let Some((agent_id, agent_type)) = agent {
            agent_fields.push(("agent_id", agent_id.into()));
            agent_fields.push(("agent_type", agent_type.into()));
        }
        let mut pre = agent_fields.clone();
        pre.extend([
            ("tool_name", tool.into()),
            ("tool_input", input.clone()),
            ("tool_use_id", id.clone().into()),
        ]);
        let pre_line = self.hook("PreToolUse", pre);
        if agent.is_none() {
            self.pre_tools.push((pre_line, tool.to_string()));
        }
        if tool == "Bash" && self.rng.chance(15) {
            self.hook(
                "Notification",
                vec![
                    ("message", "Claude needs your permission to use Bash".into()),
                    ("notification_type", "permission_prompt".into()),
                ],
            );
        }
        let mut post = agent_fields;
        post.extend([("tool_name", tool.into()), ("tool_input", input)]);
        let post_line = match failed {
            Some(error) => {
                post.extend([
                    ("tool_use_id", id.into()),
                    ("error", error.into()),
                    ("is_interrupt", false.into()),
                ]);
                self.hook("PostToolUseFailure", post)
            }
            None => {
                post.extend([
                    ("tool_response", response),
                    ("tool_use_id", id.into()),
                    ("duration_ms", duration.into()),
                ]);
                self.hook("PostToolUse", post)
            }
        };
        if agent.is_none() {
            self.post_tools.push(post_line);
        }
        // Now and then the hook's HTTP call times out after the store took
        // the event, and the hook retries: the same payload again.
        if self.rng.chance(2) {
            let again = self.lines[post_line].clone();
            self.lines.push(again);
        }
    }

    /// A tool call of the main agent or a subagent, drawn at random:
    /// Read, Grep, Edit, Bash (which fails now and then) or Glob.
    fn pick_tool(&mut self) -> ToolUse {
        let lang = self.project.lang;
        let file = (*self.rng.pick(self.project.files)).to_string();
        let dir = self.base[2].1.as_str().unwrap_or_default().to_string();
        let path = format!("{dir}/{file}");
        let roll = self.rng.range(0, 99);
        let mut failed: Option<String> = None;
        let duration = self.rng.range(8, 400);
        let (tool, input, response) = match roll {
            0..=34 => {
                let (content, lines) = self.file_content(400, 4_000);
                (
                    "Read",
                    serde_json::json!({"file_path": path}),
                    serde_json::json!({"type": "text", "file": {"filePath": path, "content": content, "numLines": lines, "startLine": 1, "totalLines": lines}}),
                )
            }
            35..=49 => self.grep(&dir),
            50..=69 => {
                let (old, _) = self.file_content(80, 600);
                let (new, _) = self.file_content(80, 900);
                (
                    "Edit",
                    serde_json::json!({"file_path": path, "old_string": old, "new_string": new}),
                    serde_json::json!({"filePath": path, "oldString": old, "newString": new, "userModified": false, "replaceAll": false}),
                )
            }
            70..=91 => {
                let (command, ok, err) = *self.rng.pick(commands(lang));
                let fails = self.rng.chance(18);
                if fails {
                    failed = Some(format!("Exit code 1\n{err}"));
                }
                (
                    "Bash",
                    serde_json::json!({"command": command, "description": format!("Run {}", command.split(' ').next().unwrap_or(command)), "timeout": 120000}),
                    serde_json::json!({"stdout": ok, "stderr": "", "interrupted": false, "isImage": false}),
                )
            }
            _ => self.glob(&dir, duration),
        };
        ToolUse {
            tool,
            input,
            response,
            failed,
            duration,
        }
    }

    /// A Grep call in `dir`: a pattern and a few hits.
    fn grep(&mut self, dir: &str) -> (&'static str, serde_json::Value, serde_json::Value) {
        let lang = self.project.lang;
        let pattern = *self.rng.pick(&[
            "unwrap\\(\\)",
            "TODO",
            "items",
            "retry",
            "fn |func |def ",
            "localStorage",
            "Mutex",
        ]);
        let hits: Vec<String> = (0..self.rng.range(2, 9))
            .map(|_| {
                let f = self.rng.pick(self.project.files);
                let l = self.rng.range(3, 240);
                let code = self.rng.pick(code_lines(lang)).trim();
                format!("{f}:{l}:{code}")
            })
            .collect();
        (
            "Grep",
            serde_json::json!({"pattern": pattern, "path": dir, "output_mode": "content", "-n": true}),
            serde_json::json!({"mode": "content", "numFiles": hits.len(), "filenames": [], "content": hits.join("\n"), "numLines": hits.len()}),
        )
    }

    /// A Glob call in `dir` that took `duration` ms: every file of the
    /// project in its language.
    fn glob(
        &self,
        dir: &str,
        duration: u64,
    ) -> (&'static str, serde_json::Value, serde_json::Value) {
        let lang = self.project.lang;
        let ext = match lang {
            Lang::Rust => "rs",
            Lang::Ts => "ts",
            Lang::Py => "py",
            Lang::Go => "go",
        };
        let names: Vec<String> = self
            .project
            .files
            .iter()
            .map(|f| format!("{dir}/{f}"))
            .collect();
        (
            "Glob",
            serde_json::json!({"pattern": format!("**/*.{ext}")}),
            serde_json::json!({"filenames": names, "durationMs": duration, "numFiles": names.len(), "truncated": false}),
        )
    }

    /// A subagent doing a few tool calls for the main agent.
    fn subagent(&mut self) {
        self.agents += 1;
        let agent_id = format!("a{}", self.rng.base62(7).to_lowercase());
        let task_id = self.tool_id();
        let task_input = serde_json::json!({
            "description": "Survey the code",
            "prompt": "Find every place that touches the code in question and report file:line with one sentence each.",
            "subagent_type": "Explore",
        });
        self.hook(
            "PreToolUse",
            vec![
                ("tool_name", "Task".into()),
                ("tool_input", task_input.clone()),
                ("tool_use_id", task_id.clone().into()),
            ],
        );
        self.hook(
            "SubagentStart",
            vec![
                ("agent_id", agent_id.clone().into()),
                ("agent_type", "Explore".into()),
            ],
        );
        for _ in 0..self.rng.range(2, 4) {
            self.tool_call(Some((&agent_id, "Explore")));
        }
        let summary = format!(
            "Found the relevant code in {} and {}; the second one is the only caller.",
            self.rng.pick(self.project.files),
            self.rng.pick(self.project.files)
        );
        let transcript = format!(
            "{}/subagents/agent-{agent_id}.jsonl",
            self.base[1]
                .1
                .as_str()
                .unwrap_or_default()
                .trim_end_matches(".jsonl")
        );
        self.hook(
            "SubagentStop",
            vec![
                ("stop_hook_active", false.into()),
                ("agent_id", agent_id.clone().into()),
                ("agent_type", "Explore".into()),
                ("agent_transcript_path", transcript.into()),
                ("last_assistant_message", summary.clone().into()),
            ],
        );
        let duration = self.rng.range(4_000, 40_000);
        self.hook(
            "PostToolUse",
            vec![
                ("tool_name", "Task".into()),
                ("tool_input", task_input),
                (
                    "tool_response",
                    serde_json::json!({"content": [{"type": "text", "text": summary}], "totalDurationMs": duration, "totalToolUseCount": 3}),
                ),
                ("tool_use_id", task_id.into()),
                ("duration_ms", duration.into()),
            ],
        );
    }

    fn turn(&mut self, prompt: &str) {
        self.hook("UserPromptSubmit", vec![("prompt", prompt.into())]);
        if self.agents == 0 && self.rng.chance(40) {
            self.subagent();
        }
        let calls = self.rng.range(2, 5);
        for c in 0..calls {
            let last = c + 1 == calls;
            self.generation(last);
            if !last {
                for _ in 0..self.rng.range(1, 3) {
                    self.tool_call(None);
                }
            }
        }
        let message = *self.rng.pick(&[
            "Done. The fix is in place and the tests pass.",
            "I made the change and added a test for it; the full suite passes.",
            "Fixed. I also tightened the error message while I was there.",
            "Done — one test needed updating because it encoded the old behaviour.",
        ]);
        self.hook(
            "Stop",
            vec![
                ("stop_hook_active", false.into()),
                ("last_assistant_message", message.into()),
            ],
        );
    }
}

/// Demo agent `index`'s session, at least `events` lines long.
pub(super) fn demo_plan(index: usize, events: usize) -> AgentPlan {
    let (mut b, prompt) = PlanBuilder::new(index);
    let model = b.model;
    b.hook(
        "SessionStart",
        vec![("source", "startup".into()), ("model", model.into())],
    );
    b.turn(prompt);
    let mut compacted = false;
    while b.lines.len() + 1 < events {
        if !compacted && b.lines.len() > events * 2 / 3 && b.rng.chance(50) {
            compacted = true;
            b.hook(
                "PreCompact",
                vec![
                    ("trigger", "auto".into()),
                    ("custom_instructions", "".into()),
                ],
            );
        }
        let prompt = *b.rng.pick(FOLLOW_UPS);
        b.turn(prompt);
    }
    let reason = *b
        .rng
        .pick(&["prompt_input_exit", "prompt_input_exit", "logout", "clear"]);
    b.hook("SessionEnd", vec![("reason", reason.into())]);
    b.finish()
}

impl PlanBuilder {
    /// Demo agent `index`'s builder, with nothing written yet, and its
    /// first prompt.
    fn new(index: usize) -> (PlanBuilder, &'static str) {
        let session = demo_session_id(index);
        let mut rng = agent_rng(index);
        rng.next();
        rng.next();
        let (project, prompt) = TASKS[index % TASKS.len()];
        let project = &PROJECTS[project];
        let model = *rng.pick(MODELS);
        let cwd = format!("/home/dev/{}", project.name);
        let transcript = format!(
            "/home/dev/.claude/projects/-home-dev-{}/{session}.jsonl",
            project.name
        );
        let builder = PlanBuilder {
            rng,
            session: session.clone(),
            project,
            base: vec![
                ("session_id", session.into()),
                ("transcript_path", transcript.into()),
                ("cwd", cwd.into()),
                ("permission_mode", "default".into()),
            ],
            model,
            lines: Vec::new(),
            generations: 0,
            pre_tools: Vec::new(),
            post_tools: Vec::new(),
            agents: 0,
        };
        (builder, prompt)
    }

    /// The plan: the lines, and where the agent dies mid-turn (a tool call
    /// about three fifths in) or pauses (after a tool call seven tenths in).
    fn finish(self) -> AgentPlan {
        let len = self.lines.len();
        // Every turn has at least one tool call of the main agent, so both
        // are found.
        let crash = self
            .pre_tools
            .iter()
            .find(|(i, _)| *i >= len * 3 / 5)
            .or(self.pre_tools.last())
            .cloned();
        let pause_at = self
            .post_tools
            .iter()
            .copied()
            .find(|&i| i >= len * 7 / 10)
            .or(self.post_tools.last().copied());
        AgentPlan {
            lines: self.lines,
            crash_at: crash.as_ref().map(|(i, _)| *i),
            crash_tool: crash.map(|(_, t)| t),
            pause_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::demo_roles;
    use super::*;
    use tracejournal::event::parse_line;

    #[test]
    fn demo_plans_are_valid_and_deterministic() {
        for agents in [1, 2, 3, 24] {
            let (crashed, open) = demo_roles(agents);
            assert!(crashed < agents);
            assert!(open.iter().all(|&i| i < agents && i != crashed));
            assert_eq!(open.is_empty(), agents == 1);
        }
        let a = demo_plan(6, 60);
        let b = demo_plan(6, 60);
        assert_eq!(a.lines, b.lines);
        assert!(a.lines.len() >= 60);
        for line in &a.lines {
            let event = parse_line(line).expect("every planned line parses");
            assert_eq!(event.session, demo_session_id(6));
        }
        let crash = a.crash_at.expect("a tool call to die in");
        assert!(a.lines[crash].contains("\"PreToolUse\""));
        let pause = a.pause_at.expect("a tool call to pause after");
        assert!(a.lines[pause].contains("\"PostToolUse"));
        assert_ne!(demo_session_id(0), demo_session_id(1));
    }
}
