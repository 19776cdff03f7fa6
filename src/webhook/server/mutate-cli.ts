// `asm-cni-webhook mutate`: runs the webhook's admit() over the pods of local manifests, like `istioctl kube-inject`
// for previews and pre-rendering. Exit 0: printed; 1: unreadable input, flags or config; 2: a pod would be denied.
import { readFile } from 'node:fs/promises';
import jsonpatch, { type Operation } from 'fast-json-patch';
import { Document, parseAllDocuments, isSeq, isCollection } from 'yaml';
import { ConfigError, DEFAULT_CONFIG, parseConfig, type SharedConfig } from '../../common/shared-config.js';
import { asObject } from '../core/json.js';
import { admitDocument } from '../core/workloads.js';
import { UsageError } from '../../common/usage-error.js';

export interface MutateIO {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export const USAGE = `usage: asm-cni-webhook mutate -f FILE|- [--namespace NS] [--config FILE] [--output yaml|json|patch]

Rewrites the Istio-injected pods in FILE (Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets,
ReplicationControllers, Jobs, CronJobs, kind: List, multi-document YAML) as the asm-cni webhook would at
admission, and prints the result. Objects of other kinds pass through unchanged.

  -f, --filename FILE   the manifest to read; - reads standard input
  -n, --namespace NS    namespace of objects that set none (default: "default")
      --config FILE     the shared asm-cni config (excludeNamespaces, invalidAnnotations, cniProvider, ...)
  -o, --output FORMAT   yaml | json | patch (default: the input's format); patch prints the JSON-patch ops
  -h, --help            this text

exit status: 0 printed, 1 unreadable input/flags/config, 2 a pod would be denied (nothing printed)
`;

type Format = 'yaml' | 'json' | 'patch';

interface Options {
  file: string;
  namespace: string | undefined;
  config: string | undefined;
  output: Format | undefined;
}

/** Unreadable input: the message says where (file, document, line). */
class InputError extends Error {}

function parseArgs(argv: readonly string[]): Options | 'help' {
  const args = argv[0] === 'mutate' ? argv.slice(1) : [...argv];
  const opts: Partial<Options> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '-h' || arg === '--help') return 'help';
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      if (eq > 0) return arg.slice(eq + 1);
      const v = args[++i];
      if (v === undefined) throw new UsageError(`${name} needs a value`);
      return v;
    };
    switch (name) {
      case '-f':
      case '--filename':
        opts.file = value();
        break;
      case '-n':
      case '--namespace':
        opts.namespace = value();
        break;
      case '--config':
        opts.config = value();
        break;
      case '-o':
      case '--output': {
        const v = value();
        if (v !== 'yaml' && v !== 'json' && v !== 'patch')
          throw new UsageError(`--output must be yaml, json or patch, got ${JSON.stringify(v)}`);
        opts.output = v;
        break;
      }
      default:
        throw new UsageError(`unknown argument ${JSON.stringify(arg)}`);
    }
  }
  if (opts.file === undefined) throw new UsageError('-f FILE (or -f - for standard input) is required');
  if (opts.namespace === '') throw new UsageError('--namespace must not be empty');
  return { file: opts.file, namespace: opts.namespace, config: opts.config, output: opts.output };
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString('utf8');
}

async function readSource(file: string, io: MutateIO): Promise<string> {
  try {
    return file === '-' ? await readAll(io.stdin) : await readFile(file, 'utf8');
  } catch (err) {
    throw new InputError(`cannot read ${file === '-' ? 'standard input' : file}: ${(err as Error).message}`);
  }
}

async function loadConfig(file: string | undefined): Promise<SharedConfig> {
  if (file === undefined) return { ...DEFAULT_CONFIG, excludeNamespaces: [...DEFAULT_CONFIG.excludeNamespaces] };
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read config ${file}: ${(err as Error).message}`);
  }
  try {
    return parseConfig(text);
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(`${file}: ${err.message}`);
    throw err;
  }
}

/** One input document: its decoded value and, for YAML, the AST that keeps comments through the edit. */
interface Source {
  value: unknown;
  yaml?: Document;
}

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

function decodeJson(text: string, where: string): Source[] {
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? (value as unknown[]).map((v) => ({ value: v })) : [{ value }];
  } catch (err) {
    const offset = jsonErrorOffset(text);
    const line = offset === undefined ? '' : ` (line ${lineOf(text, offset)})`;
    throw new InputError(`${where}: not valid JSON${line}: ${(err as Error).message}`);
  }
}

/** Offset of the first JSON syntax error (Node 20's messages do not always carry one). */
export function jsonErrorOffset(text: string): number | undefined {
  let i = 0;
  const ws = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const fail = (): never => {
    // The offset is the whole payload here: caught below, never escapes, needs no stack.
    // eslint-disable-next-line @typescript-eslint/only-throw-error
    throw i;
  };
  const literal = (word: string): void => {
    if (text.startsWith(word, i)) i += word.length;
    else fail();
  };
  const string = (): void => {
    if (text[i] !== '"') fail();
    i++;
    while (i < text.length && text[i] !== '"') {
      if (text.charCodeAt(i) < 0x20) fail();
      i += text[i] === '\\' ? 2 : 1;
    }
    if (i >= text.length) fail();
    i++;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        string();
        ws();
        if (text[i] !== ':') fail();
        i++;
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') return void i++;
        else fail();
      }
    } else if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') return void i++;
      for (;;) {
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') return void i++;
        else fail();
      }
    } else if (c === '"') {
      string();
    } else if (c === 't') literal('true');
    else if (c === 'f') literal('false');
    else if (c === 'n') literal('null');
    else {
      const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i));
      if (m === null) fail();
      i += m![0].length;
    }
  };
  try {
    value();
    ws();
    return i < text.length ? i : undefined;
  } catch (at) {
    return typeof at === 'number' ? at : undefined;
  }
}

function decodeYaml(text: string, where: string): Source[] {
  const out: Source[] = [];
  const docs = parseAllDocuments(text);
  const list = Array.isArray(docs) ? docs : [];
  for (const [i, doc] of list.entries()) {
    const error = doc.errors[0];
    if (error !== undefined) {
      const line = error.linePos?.[0]?.line;
      throw new InputError(
        `${where}: document ${i + 1}${line === undefined ? '' : ` (line ${line})`}: not valid YAML: ${error.message.split('\n')[0]}`,
      );
    }
    const decoded: unknown = doc.toJS();
    if (decoded === null || decoded === undefined) continue; // empty document, e.g. after a trailing ---
    // Aliases decode to shared objects; a JSON round trip gives each place its own copy, as the API server would.
    const value: unknown = JSON.parse(JSON.stringify(decoded));
    out.push({ value, yaml: doc });
  }
  return out;
}

/** RFC 6901 pointer → path segments; numeric segments index sequences. */
function segments(pointer: string): Array<string | number> {
  return pointer
    .split('/')
    .slice(1)
    .map((s) => (/^(0|[1-9][0-9]*)$/.test(s) ? Number(s) : s.replace(/~1/g, '/').replace(/~0/g, '~')));
}

/** Applies ops to the YAML AST so comments and untouched formatting survive; false when it cannot be trusted. */
function patchYamlDocument(doc: Document, ops: readonly Operation[], expected: unknown): boolean {
  try {
    for (const op of ops) {
      const path = segments(op.path);
      // The rewrite only emits remove, replace and add (into a sequence at an index, or a mapping key).
      if (op.op === 'remove') {
        doc.deleteIn(path);
        continue;
      }
      const value = doc.createNode((op as { value: unknown }).value);
      const parent = doc.getIn(path.slice(0, -1), true);
      const last = path[path.length - 1]!;
      if (op.op === 'add' && isSeq(parent) && typeof last === 'number') parent.items.splice(last, 0, value);
      else doc.setIn(path, value);
    }
  } catch {
    return false;
  }
  // Anchors and aliases make an AST edit ambiguous; the decoded result must match the patched value exactly.
  return isCollection(doc.contents) && JSON.stringify(doc.toJS()) === JSON.stringify(expected);
}

function yamlText(source: Source, ops: readonly Operation[], patched: unknown): string {
  if (source.yaml !== undefined && (ops.length === 0 || patchYamlDocument(source.yaml, ops, patched))) {
    return source.yaml.toString({ indentSeq: false });
  }
  return new Document(patched).toString({ indentSeq: false });
}

export async function runMutate(
  argv: string[],
  io: { stdin: NodeJS.ReadableStream; stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream },
): Promise<number> {
  try {
    const parsed = parseArgs(argv);
    if (parsed === 'help') {
      io.stdout.write(USAGE);
      return 0;
    }
    const config = await loadConfig(parsed.config);
    const where = parsed.file === '-' ? 'standard input' : parsed.file;
    const text = await readSource(parsed.file, io);
    const isJson = /^\s*[[{]/.test(text);
    const sources = isJson ? decodeJson(text, where) : decodeYaml(text, where);

    const results: Array<{ source: Source; ops: Operation[]; patched: unknown }> = [];
    const denials: string[] = [];
    for (const [i, source] of sources.entries()) {
      const obj = asObject(source.value);
      if (obj === undefined)
        throw new InputError(`${where}: document ${i + 1}: not a Kubernetes object (a mapping with kind)`);
      const { outcomes, ops } = admitDocument(obj, config, parsed.namespace);
      for (const { slot, namespace, outcome } of outcomes) {
        const label = `${where}: document ${i + 1}, ${slot.owner} (namespace ${namespace})`;
        for (const w of outcome.warnings) io.stderr.write(`warning: ${label}: ${w}\n`);
        if (outcome.decision === 'denied')
          denials.push(`${label}: denied: ${outcome.status?.message ?? outcome.reason}`);
      }
      const patched = ops.length === 0 ? obj : jsonpatch.applyPatch(structuredClone(obj), ops, true, true).newDocument;
      results.push({ source, ops, patched });
    }
    if (denials.length > 0) {
      for (const d of denials) io.stderr.write(`${d}\n`);
      return 2;
    }

    const format: Format = parsed.output ?? (isJson ? 'json' : 'yaml');
    if (format === 'patch') {
      const body = results.length === 1 ? results[0]!.ops : results.map((r, i) => ({ document: i + 1, patch: r.ops }));
      io.stdout.write(JSON.stringify(body, null, 2) + '\n');
    } else if (format === 'json') {
      const values = results.map((r) => r.patched);
      io.stdout.write(JSON.stringify(values.length === 1 ? values[0] : values, null, 2) + '\n');
    } else {
      // A parsed document keeps its own "---" marker when it had one; add one only where it is missing.
      const texts = results.map((r, i) => {
        const text = yamlText(r.source, r.ops, r.patched);
        return i === 0 || text.startsWith('---') ? text : `---\n${text}`;
      });
      io.stdout.write(texts.join(''));
    }
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`asm-cni-webhook mutate: ${err.message}\n\n${USAGE}`);
      return 1;
    }
    if (err instanceof InputError) {
      io.stderr.write(`asm-cni-webhook mutate: ${err.message}\n`);
      return 1;
    }
    io.stderr.write(`asm-cni-webhook mutate: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    return 1;
  }
}
