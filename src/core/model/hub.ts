/**
 * Downloads a BERT model from the Hugging Face hub into a local cache folder that `readBertFolder`
 * and `loadTokenizer` read.
 *
 * Files stream to a temporary name and are renamed only when complete, so an interrupted download
 * (killed process, lost connection) never leaves a truncated file that a later run would trust.
 * A folder that was fully resolved once records that in a small manifest, after which it is used
 * without any network access, which keeps offline machines and air-gapped clusters working.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readJsonFile, writeJsonAtomic } from '../checkpoint/atomic';
import { CheckpointError } from '../errors';
import {
  CONFIG_FILE,
  SHARDED_WEIGHTS_INDEX_FILE,
  TOKENIZER_CONFIG_FILE,
  VOCAB_FILE,
  WEIGHTS_FILE,
  readBertConfig,
  readShardIndex,
  safetensorsConversionHint,
} from './hf-checkpoint';

export interface HubOptions {
  /** Branch, tag or commit; default "main". */
  revision?: string;
  /** Models are cached in `${cacheDir}/${owner--name}/${revision}/`. */
  cacheDir: string;
  /** Default: env PEFT_LAB_HUB_URL, else https://huggingface.co (a mirror may be set either way). */
  baseUrl?: string;
  /** Called as bytes arrive; `total` is undefined when the server does not say. */
  onProgress?: (file: string, received: number, total?: number) => void;
  /** For tests and proxies; default the global fetch. */
  fetchImpl?: typeof fetch;
}

export const DEFAULT_HUB_URL = 'https://huggingface.co';
export const DEFAULT_REVISION = 'main';
/** Written last, listing what the hub had and lacked, so a later run needs no network to know the folder is complete. */
export const CACHE_MANIFEST_FILE = '.peft-lab-download.json';

const MODEL_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)?$/;
/** Branches may contain slashes (refs/pr/1); ".." segments are refused because the revision becomes a folder. */
const REVISION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._/-]*$/;
const TOKENIZER_FILES = ['tokenizer.json', VOCAB_FILE];
/** Matches atomic.ts's temporary names, which .gitignore and file watchers already skip. */
const tempSuffix = () => `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;

interface Session {
  id: string;
  revision: string;
  folder: string;
  baseUrl: string;
  fetch: typeof fetch;
  headers: Record<string, string>;
  onProgress?: HubOptions['onProgress'];
  present: string[];
  absent: string[];
}

interface CacheManifest {
  model: string;
  revision: string;
  files: string[];
  absent: string[];
}

/**
 * Makes sure the model `id` at `revision` is in the cache and returns its local folder. Files
 * already cached are not downloaded again. Every failure is a CheckpointError naming the model and file.
 */
export async function resolveHubModel(id: string, options: HubOptions): Promise<string> {
  const session = startSession(id, options);
  if (isCompleteInCache(session.folder)) return session.folder;
  createFolder(session);
  await fetchFile(session, CONFIG_FILE, { optional: false });
  // Refuses a RoBERTa or malformed config before the large weights file is downloaded.
  readBertConfig(session.folder);
  await fetchTokenizer(session);
  await fetchFile(session, TOKENIZER_CONFIG_FILE, { optional: true });
  await fetchWeights(session);
  writeManifest(session);
  return session.folder;
}

/** The cache folder of a model id and revision, whether or not it has been downloaded. */
export function hubCacheFolder(cacheDir: string, id: string, revision = DEFAULT_REVISION): string {
  return path.resolve(cacheDir, id.replace('/', '--'), revision.replaceAll('/', '--'));
}

function startSession(id: string, options: HubOptions): Session {
  const revision = options.revision ?? DEFAULT_REVISION;
  if (!MODEL_ID_PATTERN.test(id)) {
    throw new CheckpointError(
      id,
      'not a valid Hugging Face model id: expected "name" or "owner/name" (letters, digits, ".", "_", "-")',
    );
  }
  if (!REVISION_PATTERN.test(revision) || revision.split('/').includes('..')) {
    throw new CheckpointError(
      id,
      `not a valid revision ${JSON.stringify(revision)}: expected a branch, tag or commit hash`,
    );
  }
  const token = process.env.HF_TOKEN;
  return {
    id,
    revision,
    folder: hubCacheFolder(options.cacheDir, id, revision),
    baseUrl: (options.baseUrl ?? process.env.PEFT_LAB_HUB_URL ?? DEFAULT_HUB_URL).replace(/\/+$/, ''),
    fetch: options.fetchImpl ?? fetch,
    headers: { 'user-agent': 'peft-lab', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    onProgress: options.onProgress,
    present: [],
    absent: [],
  };
}

function createFolder(session: Session): void {
  try {
    fs.mkdirSync(session.folder, { recursive: true });
  } catch (err) {
    throw new CheckpointError(
      session.folder,
      `cannot create the model cache folder for ${session.id}: ${(err as Error).message}`,
    );
  }
}

function isCompleteInCache(folder: string): boolean {
  let manifest: unknown;
  try {
    manifest = readJsonFile(path.join(folder, CACHE_MANIFEST_FILE), 'download manifest');
  } catch {
    return false;
  }
  const files = (manifest as Partial<CacheManifest> | null)?.files;
  return (
    Array.isArray(files) && files.every((file) => typeof file === 'string' && fs.existsSync(path.join(folder, file)))
  );
}

function writeManifest(session: Session): void {
  const manifest: CacheManifest = {
    model: session.id,
    revision: session.revision,
    files: session.present,
    absent: session.absent,
  };
  writeJsonAtomic(path.join(session.folder, CACHE_MANIFEST_FILE), manifest);
}

async function fetchTokenizer(session: Session): Promise<void> {
  let found = false;
  for (const file of TOKENIZER_FILES) {
    if (await fetchFile(session, file, { optional: true })) found = true;
  }
  if (!found) {
    throw new CheckpointError(
      `${session.id}/${VOCAB_FILE}`,
      `the model has no tokenizer: neither ${TOKENIZER_FILES.join(' nor ')} exists on the hub`,
    );
  }
}

async function fetchWeights(session: Session): Promise<void> {
  if (await fetchFile(session, WEIGHTS_FILE, { optional: true })) return;
  if (await fetchFile(session, SHARDED_WEIGHTS_INDEX_FILE, { optional: true })) {
    const shards = new Set(readShardIndex(path.join(session.folder, SHARDED_WEIGHTS_INDEX_FILE)).values());
    for (const shard of shards) await fetchFile(session, shard, { optional: false });
    return;
  }
  throw await noSafetensorsError(session);
}

/** True when the file is (now) in the cache; false when it is optional and the hub does not have it. */
async function fetchFile(session: Session, file: string, { optional }: { optional: boolean }): Promise<boolean> {
  const target = path.join(session.folder, file);
  if (!fs.existsSync(target)) {
    const response = await request(session, file, 'GET');
    if (response.status === 404 && optional) {
      await discardBody(response);
      session.absent.push(file);
      return false;
    }
    if (!response.ok) throw await httpError(session, file, response);
    await streamToFile(session, file, response, target);
  }
  session.present.push(file);
  return true;
}

function fileUrl(session: Session, file: string): string {
  return `${session.baseUrl}/${session.id}/resolve/${encodeURIComponent(session.revision)}/${file}`;
}

async function request(session: Session, file: string, method: 'GET' | 'HEAD'): Promise<Response> {
  const url = fileUrl(session, file);
  try {
    // The hub redirects weights to a CDN; fetch drops the Authorization header on that cross-origin hop.
    return await session.fetch(url, { method, headers: session.headers, redirect: 'follow' });
  } catch (err) {
    throw new CheckpointError(
      `${session.id}/${file}`,
      `could not reach the Hugging Face hub at ${url} (${networkReason(err)}). ` +
        'Download the model folder on a machine with internet access and set model.path to it.',
    );
  }
}

/** Streams to a temporary file, flushed and renamed only when every announced byte arrived. */
async function streamToFile(session: Session, file: string, response: Response, target: string): Promise<void> {
  const temp = target + tempSuffix();
  const total = announcedLength(response);
  const handle = await fs.promises.open(temp, 'wx').catch((err: unknown) => {
    throw transferError(session, file, err, 0, total);
  });
  let received = 0;
  try {
    for await (const chunk of response.body ?? []) {
      await handle.write(chunk);
      received += chunk.byteLength;
      session.onProgress?.(file, received, total);
    }
    if (total !== undefined && received !== total) throw new Error('the connection closed early');
    await handle.sync();
  } catch (err) {
    await handle.close();
    await fs.promises.rm(temp, { force: true });
    throw transferError(session, file, err, received, total);
  }
  await handle.close();
  await fs.promises.rename(temp, target).catch(async (err: unknown) => {
    await fs.promises.rm(temp, { force: true });
    throw transferError(session, file, err, received, total);
  });
}

/** Undefined when unknown, or when the body is compressed and Content-Length counts the compressed bytes. */
function announcedLength(response: Response): number | undefined {
  const length = response.headers.get('content-length');
  if (length === null || response.headers.get('content-encoding') !== null) return undefined;
  const value = Number(length);
  return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}

function transferError(
  session: Session,
  file: string,
  err: unknown,
  received: number,
  total: number | undefined,
): CheckpointError {
  const where = `${session.id}/${file}`;
  if (isFileSystemError(err))
    return new CheckpointError(where, `cannot write the download into ${session.folder}: ${err.message}`);
  const progress = `${received}${total === undefined ? '' : ` of ${total}`} bytes`;
  return new CheckpointError(
    where,
    `download from ${fileUrl(session, file)} was interrupted after ${progress} (${networkReason(err)}); ` +
      'nothing was kept, run again to retry',
  );
}

/** The hub explains refusals in X-Error-Code (RepoNotFound, GatedRepo, EntryNotFound, RevisionNotFound). */
async function httpError(session: Session, file: string, response: Response): Promise<CheckpointError> {
  await discardBody(response);
  const where = `${session.id}/${file}`;
  const url = fileUrl(session, file);
  const code = response.headers.get('x-error-code');
  if (response.status === 401 || response.status === 403)
    return new CheckpointError(where, accessDeniedDetail(session, response.status, code));
  if (response.status === 404) return new CheckpointError(where, notFoundDetail(session, file, url, code));
  const retry =
    response.status === 429 || response.status >= 500 ? '; the hub may be busy or down, try again later' : '';
  return new CheckpointError(
    where,
    `the hub answered HTTP ${response.status} ${response.statusText} for ${url}${retry}`,
  );
}

function accessDeniedDetail(session: Session, status: number, code: string | null): string {
  const modelPage = `${session.baseUrl}/${session.id}`;
  const tokenAdvice = process.env.HF_TOKEN
    ? `HF_TOKEN is set but was refused for this model: check that the token is valid and that its account can access ${session.id}`
    : 'set the environment variable HF_TOKEN to a Hugging Face access token (https://huggingface.co/settings/tokens)';
  if (code === 'GatedRepo') {
    return `access denied (HTTP ${status}): ${session.id} is a gated model; accept its terms at ${modelPage}, then ${tokenAdvice}`;
  }
  // The hub answers 401 rather than 404 for unknown models to anonymous users, so both causes are named.
  return `access denied (HTTP ${status}): the model ${session.id} is private or gated, or does not exist; ${tokenAdvice}`;
}

function notFoundDetail(session: Session, file: string, url: string, code: string | null): string {
  if (code === 'RevisionNotFound')
    return `the model ${session.id} has no revision "${session.revision}" (${url} returned 404)`;
  if (code === 'RepoNotFound') return `the hub has no model ${session.id} (${url} returned 404); check the model id`;
  if (code === 'EntryNotFound')
    return `the model ${session.id} has no file ${file} at revision "${session.revision}" (${url} returned 404)`;
  return `no such model or file: ${url} returned 404; check the model id (such as google/bert_uncased_L-4_H-256_A-4) and revision`;
}

/** A repository saved before safetensors existed has only pickle weights; say so and how to convert. */
async function noSafetensorsError(session: Session): Promise<CheckpointError> {
  const where = `${session.id}/${WEIGHTS_FILE}`;
  const destination = `${session.id.replace('/', '--')}-safetensors`;
  const hint = `${safetensorsConversionHint(session.id, destination)}\nThen set model.path to the folder "${destination}".`;
  const hasPickle = await hubHasFile(session, 'pytorch_model.bin');
  const found = hasPickle
    ? 'has only pytorch_model.bin'
    : `has neither ${WEIGHTS_FILE} nor ${SHARDED_WEIGHTS_INDEX_FILE}`;
  return new CheckpointError(where, `the model ${session.id} ${found} at revision "${session.revision}". ${hint}`);
}

async function hubHasFile(session: Session, file: string): Promise<boolean> {
  try {
    const response = await request(session, file, 'HEAD');
    await discardBody(response);
    return response.ok;
  } catch {
    return false; // only refines a message; the caller reports the real problem either way
  }
}

/** An unread body keeps its connection busy until garbage collection. */
async function discardBody(response: Response): Promise<void> {
  try {
    await response.body?.cancel();
  } catch {
    // The connection is already gone; nothing to release.
  }
}

/** fetch reports every network failure as "fetch failed"; the useful part (ECONNREFUSED, ENOTFOUND ...) is in `cause`. */
function networkReason(err: unknown): string {
  const cause = (err as { cause?: unknown } | null)?.cause as
    { code?: unknown; message?: unknown; errors?: { code?: unknown }[] } | undefined;
  const code = cause?.code ?? cause?.errors?.[0]?.code;
  const message = typeof cause?.message === 'string' ? cause.message : '';
  if (typeof code === 'string' && !message.includes(code)) return message ? `${code}: ${message}` : code;
  if (message) return message;
  return err instanceof Error ? err.message : String(err);
}

function isFileSystemError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}
