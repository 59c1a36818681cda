// Evaluates GitHub Actions expressions with GitHub's own evaluator (@actions/expressions, the package behind
// the Actions language services), for the action harness in act_harness.py.
//
// stdin:  {"contexts": {"inputs": {...}, "github": {...}, ...}, "status": "success" | "failure",
//          "expressions": ["inputs.target == 'local'", ...]}
// stdout: [{"ok": true, "value": <JSON>, "string": "<coerced to string>", "truthy": true|false}
//          | {"ok": false, "error": "<message>"}, ...]   (one entry per expression, same order)
//
// The job-status functions are the runner's, not the language's: success() is true until a step failed,
// failure() after one, always() always, cancelled() never (the harness does not cancel).
import { Evaluator, Lexer, Parser, data } from "@actions/expressions";
import { truthy } from "@actions/expressions/result";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const request = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const failed = request.status === "failure";
const status = { success: !failed, failure: failed, always: true, cancelled: false };
const functionInfo = Object.keys(status).map((name) => ({ name, minArgs: 0, maxArgs: 0 }));
const functions = new Map(Object.entries(status).map(([name, value]) => [
  name, { name, minArgs: 0, maxArgs: 0, call: () => new data.BooleanData(value) },
]));

const contexts = JSON.parse(JSON.stringify(request.contexts), data.reviver);
const contextNames = Object.keys(request.contexts);

const results = request.expressions.map((source) => {
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
process.stdout.write(JSON.stringify(results));
