//! Where vpncmd's prompts read their answers: the terminal or piped standard input alike, as
//! vpncmd reads them. Passwords are read without echo from a terminal.

use std::io::{BufRead, IsTerminal, Write};

/// Lines in, text out.
pub trait Console {
    /// Shows `prompt` and reads one line (without its end); `None` at the end of input.
    fn read_line(&mut self, prompt: &str) -> Option<String>;
    /// Like [`Console::read_line`] without echoing what is typed on a terminal.
    fn read_password(&mut self, prompt: &str) -> Option<String>;
    /// Shows text at once.
    fn write(&mut self, text: &str);
}

/// The process's standard input and output.
pub struct StdConsole;

fn read_stdin_line() -> Option<String> {
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_string()),
    }
}

impl Console for StdConsole {
    fn read_line(&mut self, prompt: &str) -> Option<String> {
        self.write(prompt);
        read_stdin_line()
    }

    fn read_password(&mut self, prompt: &str) -> Option<String> {
        self.write(prompt);
        if std::io::stdin().is_terminal() {
            let pw = rpassword::read_password().ok();
            println!();
            pw
        } else {
            read_stdin_line()
        }
    }

    fn write(&mut self, text: &str) {
        print!("{text}");
        let _ = std::io::stdout().flush();
    }
}

/// Answers from a list, for tests and scripts: every prompt takes the next answer.
#[derive(Default)]
pub struct Scripted {
    pub answers: std::collections::VecDeque<String>,
    /// Everything shown: prompts and text, in order.
    pub shown: String,
}

impl Scripted {
    pub fn new(answers: &[&str]) -> Scripted {
        Scripted {
            answers: answers.iter().map(|a| a.to_string()).collect(),
            shown: String::new(),
        }
    }
}

impl Console for Scripted {
    fn read_line(&mut self, prompt: &str) -> Option<String> {
        self.shown.push_str(prompt);
        let a = self.answers.pop_front()?;
        self.shown.push_str(&a);
        self.shown.push('\n');
        Some(a)
    }

    fn read_password(&mut self, prompt: &str) -> Option<String> {
        self.shown.push_str(prompt);
        let a = self.answers.pop_front()?;
        self.shown.push('\n');
        Some(a)
    }

    fn write(&mut self, text: &str) {
        self.shown.push_str(text);
    }
}
