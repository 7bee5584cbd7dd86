import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { isTempFile } from '../../src/core/checkpoint/atomic';
import { CheckpointError } from '../../src/core/errors';
import { readBertFolder } from '../../src/core/model/hf-checkpoint';
import { CACHE_MANIFEST_FILE, hubCacheFolder, resolveHubModel } from '../../src/core/model/hub';
import { loadBaseModel } from '../../src/core/train/session';
import { HfTokenizer } from '../../src/core/data/hf-tokenizer';

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'tiny-bert');
const MODEL_ID = 'test-org/tiny-bert';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-lab-hub-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

// The developer's own token or mirror must not change what these tests see.
delete process.env.HF_TOKEN;
delete process.env.PEFT_LAB_HUB_URL;

type Reply = (req: http.IncomingMessage, res: http.ServerResponse) => void;

interface FakeHub {
  url: string;
  requests: { method: string; path: string; authorization?: string }[];
  close(): Promise<void>;
}

const servers: FakeHub[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

/** A stand-in for huggingface.co on 127.0.0.1: `routes` maps a file name under /MODEL_ID/resolve/main/ to a reply. */
async function startHub(routes: Record<string, Reply>, id = MODEL_ID, revision = 'main'): Promise<FakeHub> {
  const requests: FakeHub['requests'] = [];
  const prefix = `/${id}/resolve/${encodeURIComponent(revision)}/`;
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization });
    const inModel = req.url?.startsWith(prefix) ?? false;
    const reply = inModel ? routes[req.url!.slice(prefix.length)] : undefined;
    // Like the real hub: a known model lacking the file says EntryNotFound; anything else is a bare 404.
    (reply ?? status(404, inModel ? { 'x-error-code': 'EntryNotFound' } : {}))(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const hub: FakeHub = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  servers.push(hub);
  return hub;
}

function file(content: Uint8Array | string): Reply {
  return (req, res) => {
    res.writeHead(200, { 'content-length': Buffer.byteLength(content) });
    res.end(req.method === 'HEAD' ? undefined : content);
  };
}

function fixtureFile(name: string): Reply {
  return file(fs.readFileSync(path.join(FIXTURE, name)));
}

function status(code: number, headers: Record<string, string> = {}): Reply {
  return (_req, res) => {
    res.writeHead(code, headers);
    res.end(`status ${code}`);
  };
}

/** Announces the whole file, sends the first half, then drops the connection. */
function truncated(content: Uint8Array): Reply {
  return (_req, res) => {
    res.writeHead(200, { 'content-length': content.length });
    res.write(content.subarray(0, content.length >> 1), () => res.destroy());
  };
}

function fixtureRoutes(): Record<string, Reply> {
  return {
    'config.json': fixtureFile('config.json'),
    'model.safetensors': fixtureFile('model.safetensors'),
    'vocab.txt': fixtureFile('vocab.txt'),
    'tokenizer_config.json': fixtureFile('tokenizer_config.json'),
  };
}

let cacheCount = 0;
function freshCache(): string {
  return path.join(tmp, `cache-${++cacheCount}`);
}

async function rejectsWith(promise: Promise<unknown>, file: string, ...fragments: string[]): Promise<CheckpointError> {
  let caught: unknown;
  await assert.rejects(promise, (err: unknown) => {
    caught = err;
    return true;
  });
  assert.ok(caught instanceof CheckpointError, `expected CheckpointError, got ${String(caught)}`);
  assert.equal(caught.file, file);
  for (const fragment of fragments)
    assert.ok(caught.message.includes(fragment), `"${caught.message}" should mention ${fragment}`);
  return caught;
}

function filesIn(folder: string): string[] {
  return fs.existsSync(folder) ? fs.readdirSync(folder).sort() : [];
}

describe('resolveHubModel for every encoder family', () => {
  for (const family of ['roberta', 'xlm-roberta', 'distilbert', 'electra', 'modernbert']) {
    it(`downloads a ${family} checkpoint with its tokenizer.json, which a run then loads from the cache`, async () => {
      const dir = path.join(__dirname, '..', 'fixtures', `tiny-${family}`);
      const id = `test-org/tiny-${family}`;
      const routes = Object.fromEntries(
        ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'].map((f) => [
          f,
          file(fs.readFileSync(path.join(dir, f))),
        ]),
      );
      const hub = await startHub(routes, id);
      const cacheDir = freshCache();
      const previous = process.env.PEFT_LAB_HUB_URL;
      process.env.PEFT_LAB_HUB_URL = hub.url;
      try {
        const base = await loadBaseModel({ model: { hub: id, cacheDir }, training: { seed: 1 } } as Parameters<
          typeof loadBaseModel
        >[0]);
        assert.equal(base.source, hubCacheFolder(cacheDir, id));
        assert.equal(base.bert.model_type, family);
        assert.ok(base.tokenizer instanceof HfTokenizer, 'tokenizer.json read through @huggingface/tokenizers');
        assert.equal(
          base.weights.size,
          readBertFolder(dir).weights.size + (readBertFolder(dir).weights.has('bert.pooler.dense.weight') ? 0 : 2),
          'every weight, and a pooler',
        );
      } finally {
        if (previous === undefined) delete process.env.PEFT_LAB_HUB_URL;
        else process.env.PEFT_LAB_HUB_URL = previous;
      }
      // vocab.txt is asked for and absent: a tokenizer.json is enough
      assert.deepEqual(
        JSON.parse(fs.readFileSync(path.join(hubCacheFolder(cacheDir, id), CACHE_MANIFEST_FILE), 'utf8')).absent,
        ['vocab.txt'],
      );
    });
  }
});

describe('resolveHubModel', () => {
  it('downloads the model files into the cache folder', async () => {
    const hub = await startHub(fixtureRoutes());
    const cacheDir = freshCache();
    const progress: { file: string; received: number; total?: number }[] = [];
    const folder = await resolveHubModel(MODEL_ID, {
      cacheDir,
      baseUrl: hub.url,
      onProgress: (name, received, total) => progress.push({ file: name, received, total }),
    });
    assert.equal(folder, path.resolve(cacheDir, 'test-org--tiny-bert', 'main'));
    assert.equal(folder, hubCacheFolder(cacheDir, MODEL_ID));
    assert.deepEqual(
      filesIn(folder),
      [CACHE_MANIFEST_FILE, 'config.json', 'model.safetensors', 'tokenizer_config.json', 'vocab.txt'].sort(),
    );
    for (const name of ['config.json', 'model.safetensors', 'vocab.txt', 'tokenizer_config.json']) {
      assert.deepEqual(fs.readFileSync(path.join(folder, name)), fs.readFileSync(path.join(FIXTURE, name)), name);
    }
    assert.equal(readBertFolder(folder).weights.size, 39);
    const modelSize = fs.statSync(path.join(FIXTURE, 'model.safetensors')).size;
    const last = progress.filter((p) => p.file === 'model.safetensors').at(-1);
    assert.deepEqual(last, { file: 'model.safetensors', received: modelSize, total: modelSize });
    assert.ok(
      hub.requests.every((r) => r.authorization === undefined),
      'no token is sent without HF_TOKEN',
    );
  });

  it('uses a complete cache without any network access', async () => {
    const hub = await startHub(fixtureRoutes());
    const cacheDir = freshCache();
    const folder = await resolveHubModel(MODEL_ID, { cacheDir, baseUrl: hub.url });
    await hub.close();
    const again = await resolveHubModel(MODEL_ID, { cacheDir, baseUrl: hub.url });
    assert.equal(again, folder);
    const noNetwork = (() => Promise.reject(new Error('network used'))) as typeof fetch;
    assert.equal(await resolveHubModel(MODEL_ID, { cacheDir, baseUrl: hub.url, fetchImpl: noNetwork }), folder);
  });

  it('downloads only the files missing from an incomplete cache', async () => {
    const first = await startHub(fixtureRoutes());
    const cacheDir = freshCache();
    const folder = await resolveHubModel(MODEL_ID, { cacheDir, baseUrl: first.url });
    fs.rmSync(path.join(folder, CACHE_MANIFEST_FILE));
    fs.rmSync(path.join(folder, 'model.safetensors'));
    const second = await startHub(fixtureRoutes());
    await resolveHubModel(MODEL_ID, { cacheDir, baseUrl: second.url });
    const requested = second.requests.map((r) => path.basename(r.path)).sort();
    assert.deepEqual(requested, ['model.safetensors', 'tokenizer.json']);
  });

  it('reports an unknown model (404) naming the model and file', async () => {
    const hub = await startHub({});
    await rejectsWith(
      resolveHubModel('nobody/nothing', { cacheDir: freshCache(), baseUrl: hub.url }),
      'nobody/nothing/config.json',
      'no such model or file',
      `${hub.url}/nobody/nothing/resolve/main/config.json returned 404`,
    );
  });

  it('reports a model without a tokenizer, and other HTTP statuses', async () => {
    const { 'vocab.txt': _vocab, ...routes } = fixtureRoutes();
    const noTokenizer = await startHub(routes);
    await rejectsWith(
      resolveHubModel(MODEL_ID, { cacheDir: freshCache(), baseUrl: noTokenizer.url }),
      `${MODEL_ID}/vocab.txt`,
      'neither tokenizer.json nor vocab.txt',
    );
    const busy = await startHub({ 'config.json': status(503) });
    await rejectsWith(
      resolveHubModel(MODEL_ID, { cacheDir: freshCache(), baseUrl: busy.url }),
      `${MODEL_ID}/config.json`,
      'HTTP 503',
      'try again later',
    );
  });

  it('reports 401 as private, gated or unknown, with the HF_TOKEN hint', async () => {
    const hub = await startHub({ 'config.json': status(401, { 'x-error-code': 'RepoNotFound' }) });
    await rejectsWith(
      resolveHubModel(MODEL_ID, { cacheDir: freshCache(), baseUrl: hub.url }),
      `${MODEL_ID}/config.json`,
      'HTTP 401',
      'private or gated',
      'HF_TOKEN',
    );
  });

  it('sends HF_TOKEN as a bearer token and says when it is refused', async () => {
    const hub = await startHub({ 'config.json': status(403, { 'x-error-code': 'GatedRepo' }) });
    process.env.HF_TOKEN = 'hf_test_token';
    try {
      await rejectsWith(
        resolveHubModel(MODEL_ID, { cacheDir: freshCache(), baseUrl: hub.url }),
        `${MODEL_ID}/config.json`,
        'gated model',
        'HF_TOKEN is set but was refused',
      );
    } finally {
      delete process.env.HF_TOKEN;
    }
    assert.equal(hub.requests[0].authorization, 'Bearer hf_test_token');
  });

  it('reports a refused connection with the offline advice', async () => {
    const hub = await startHub({});
    await hub.close();
    await rejectsWith(
      resolveHubModel(MODEL_ID, { cacheDir: freshCache(), baseUrl: hub.url }),
      `${MODEL_ID}/config.json`,
      `could not reach the Hugging Face hub at ${hub.url}/${MODEL_ID}/resolve/main/config.json (`,
      'ECONNREFUSED',
      'set model.path to it',
    );
  });

  it('keeps nothing of an interrupted transfer, and a retry completes it', async () => {
    const model = fs.readFileSync(path.join(FIXTURE, 'model.safetensors'));
    const hub = await startHub({ ...fixtureRoutes(), 'model.safetensors': truncated(model) });
    const cacheDir = freshCache();
    const folder = hubCacheFolder(cacheDir, MODEL_ID);
    await rejectsWith(
      resolveHubModel(MODEL_ID, { cacheDir, baseUrl: hub.url }),
      `${MODEL_ID}/model.safetensors`,
      'interrupted',
    );
    assert.ok(!fs.existsSync(path.join(folder, 'model.safetensors')), 'no final file');
    assert.ok(!fs.existsSync(path.join(folder, CACHE_MANIFEST_FILE)), 'not marked complete');
    assert.deepEqual(filesIn(folder).filter(isTempFile), [], 'no temporary file left');

    const working = await startHub(fixtureRoutes());
    await resolveHubModel(MODEL_ID, { cacheDir, baseUrl: working.url });
    assert.deepEqual(fs.readFileSync(path.join(folder, 'model.safetensors')), model);
  });

  it('explains how to convert a model that has only pytorch_model.bin', async () => {
    const { 'model.safetensors': _, ...routes } = fixtureRoutes();
    const hub = await startHub({ ...routes, 'pytorch_model.bin': file('pickle') });
    await rejectsWith(
      resolveHubModel(MODEL_ID, { cacheDir: freshCache(), baseUrl: hub.url }),
      `${MODEL_ID}/model.safetensors`,
      'has only pytorch_model.bin',
      `AutoModel.from_pretrained("${MODEL_ID}")`,
      'safe_serialization=True',
      'model.path',
    );
  });

  it('downloads every shard of a sharded checkpoint', async () => {
    const { 'model.safetensors': _whole, ...routes } = fixtureRoutes();
    // One shard holding everything is enough to exercise the index; readBertFolder's tests cover merging.
    const index = JSON.stringify({
      weight_map: { 'bert.embeddings.LayerNorm.bias': 'model-00001-of-00001.safetensors' },
    });
    const hub = await startHub({
      ...routes,
      'model.safetensors.index.json': file(index),
      'model-00001-of-00001.safetensors': fixtureFile('model.safetensors'),
    });
    const folder = await resolveHubModel(MODEL_ID, { cacheDir: freshCache(), baseUrl: hub.url });
    assert.equal(readBertFolder(folder).weights.size, 39);
  });

  it('refuses a model type PEFT Lab does not support before downloading its weights', async () => {
    const deberta = JSON.stringify({
      ...JSON.parse(fs.readFileSync(path.join(FIXTURE, 'config.json'), 'utf8')),
      model_type: 'deberta-v2',
    });
    const hub = await startHub({ ...fixtureRoutes(), 'config.json': file(deberta) });
    await assert.rejects(
      resolveHubModel(MODEL_ID, { cacheDir: freshCache(), baseUrl: hub.url }),
      /model_type "deberta-v2" is not supported yet/,
    );
    assert.ok(!hub.requests.some((r) => r.path.endsWith('model.safetensors')));
  });

  it('rejects invalid model ids and revisions without any network access', async () => {
    const noNetwork = (() => Promise.reject(new Error('network used'))) as typeof fetch;
    for (const id of ['../etc', 'a/b/c', '', 'with space', '/leading']) {
      await rejectsWith(
        resolveHubModel(id, { cacheDir: freshCache(), fetchImpl: noNetwork }),
        id,
        'not a valid Hugging Face model id',
      );
    }
    await rejectsWith(
      resolveHubModel('ok', { revision: 'a/../../b', cacheDir: freshCache(), fetchImpl: noNetwork }),
      'ok',
      'not a valid revision',
    );
  });

  describe('base URL', () => {
    beforeEach(() => delete process.env.PEFT_LAB_HUB_URL);
    afterEach(() => delete process.env.PEFT_LAB_HUB_URL);

    it('comes from PEFT_LAB_HUB_URL when not given, and a revision goes into the URL and the cache path', async () => {
      const hub = await startHub(fixtureRoutes(), MODEL_ID, 'v1.0');
      process.env.PEFT_LAB_HUB_URL = `${hub.url}/`;
      const cacheDir = freshCache();
      const folder = await resolveHubModel(MODEL_ID, { cacheDir, revision: 'v1.0' });
      assert.equal(folder, path.resolve(cacheDir, 'test-org--tiny-bert', 'v1.0'));
      assert.ok(hub.requests.some((r) => r.path === `/${MODEL_ID}/resolve/v1.0/config.json`));
    });
  });
});
