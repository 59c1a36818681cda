// Evaluates GitHub Actions expressions with GitHub's own evaluator (@actions/expressions, the package behind
// the Actions language services), for the action harness in act_harness.py: one process for all of a test
// session's evaluations (a node start costs more than an action run's every evaluation together).
//
// stdin, one request a line:  {"contexts": {"inputs": {...}, "github": {...}, ...}, "status": "success" | "failure",
//                              "expressions": ["inputs.target == 'local'", ...]}
// stdout, one answer a line:  [{"ok": true, "value": <JSON>, "string": "<coerced to string>", "truthy": true|false}
//                              | {"ok": false, "error": "<message>"}, ...]   (one entry per expression, same order)
// A line that is not a request is answered {"fatal": "<message>"}; the process ends when stdin does.
//
// The job-status functions are the runner's, not the language's: success() is true until a step failed,
// failure() after one, always() always, cancelled() never (the harness does not cancel).
import { createInterface } from "node:readline";
import { Evaluator, Lexer, Parser, data } from "@actions/expressions";
import { truthy } from "@actions/expressions/result";

function evaluateAll(request) {
  const failed = request.status === "failure";
  const status = { success: !failed, failure: failed, always: true, cancelled: false };
  const functionInfo = Object.keys(status).map((name) => ({ name, minArgs: 0, maxArgs: 0 }));
  const functions = new Map(Object.entries(status).map(([name, value]) => [
    name, { name, minArgs: 0, maxArgs: 0, call: () => new data.BooleanData(value) },
  ]));
  const contexts = JSON.parse(JSON.stringify(request.contexts), data.reviver);
  const contextNames = Object.keys(request.contexts);
  return request.expressions.map((source) => {
    try {
      const lexed = new Lexer(source).lex();
      const expression = new Parser(lexed.tokens, contextNames, functionInfo).parse();
      const value = new Evaluator(expression, contexts, functions).evaluate();
      return {
        ok: true,
        value: JSON.parse(JSON.stringify(value, data.replacer)),
        string: value.coerceString(),
        truthy: truthy(value),
      };
    } catch (error) {
      return { ok: false, error: `${source}: ${error.message}` };
    }
  });
}

for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  if (!line.trim()) continue;
  let answer;
  try {
    answer = evaluateAll(JSON.parse(line));
  } catch (error) {
    answer = { fatal: error.message };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
