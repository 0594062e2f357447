// Client for Berth's KV and Blob APIs. Plain ESM over the global fetch (Node 18+, browsers,
// Deno, Bun): no dependencies and no build step. Types: index.d.ts beside this file.

const ENV = {
  url: ['BERTH_API_URL', 'TEMPS_API_URL'],
  token: ['BERTH_TOKEN', 'TEMPS_TOKEN'],
  project: ['BERTH_PROJECT_ID', 'TEMPS_PROJECT_ID'],
};

const BLOB_PREFIX = '/api/blob/';

/** Every failure: Berth's problem+json (status, title, detail), or status 0 without an answer. */
export class BerthError extends Error {
  constructor(problem, options) {
    const { status = 0, title = '', detail = '' } = problem;
    super(detail ? `${status} ${title}: ${detail}` : `${status} ${title}`.trim(), options);
    this.name = 'BerthError';
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.problem = problem;
  }
}

function env(names) {
  // `process` is absent in browsers; the config must then be given.
  const vars = typeof process !== 'undefined' && process.env ? process.env : {};
  for (const name of names) {
    const value = vars[name];
    if (value && value.trim()) return value.trim();
  }
  return undefined;
}

/**
 * A client for one server and token. Missing settings come from BERTH_API_URL, BERTH_TOKEN,
 * BERTH_PROJECT_ID (or Temps' TEMPS_* names).
 */
export function createClient(config = {}) {
  const baseUrl = config.baseUrl ?? config.apiUrl ?? env(ENV.url);
  const token = config.token ?? env(ENV.token);
  let projectId = config.projectId ?? env(ENV.project);
  if (!baseUrl) throw new BerthError({ title: 'Configuration', detail: 'baseUrl is required (or BERTH_API_URL)' });
  if (!token) throw new BerthError({ title: 'Configuration', detail: 'token is required (or BERTH_TOKEN)' });
  if (projectId !== undefined) {
    projectId = Number(projectId);
    if (!Number.isSafeInteger(projectId) || projectId < 1) {
      throw new BerthError({ title: 'Configuration', detail: `projectId is not a project id: ${config.projectId ?? env(ENV.project)}` });
    }
  }
  const http = new Http(baseUrl.replace(/\/+$/, ''), token, projectId, config.fetch ?? globalThis.fetch);
  return {
    projectId,
    kv: new Kv(http),
    blob: new BlobStore(http),
    /** The same client acting for another project (admin tokens must name one). */
    withProject: (id) => createClient({ ...config, baseUrl, token, projectId: id }),
  };
}

class Http {
  constructor(baseUrl, token, projectId, fetchImpl) {
    this.baseUrl = baseUrl;
    this.token = token;
    this.projectId = projectId;
    this.fetch = fetchImpl;
  }

  url(path) {
    return this.baseUrl + path;
  }

  async send(url, init = {}) {
    const headers = { authorization: `Bearer ${this.token}`, ...(init.headers ?? {}) };
    let response;
    try {
      response = await this.fetch(url, { ...init, headers });
    } catch (cause) {
      throw new BerthError({ status: 0, title: 'Network error', detail: String(cause?.message ?? cause) }, { cause });
    }
    if (!response.ok) throw await problemOf(response);
    return response;
  }

  async json(method, path, body) {
    const response = await this.send(this.url(path), {
      method,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return response.json();
  }
}

async function problemOf(response) {
  const text = await response.text().catch(() => '');
  try {
    const problem = JSON.parse(text);
    if (problem && typeof problem === 'object') {
      return new BerthError({ status: response.status, title: response.statusText, ...problem });
    }
  } catch {
    // Not problem+json (a proxy's page, a HEAD answer): the text is the detail.
  }
  return new BerthError({ status: response.status, title: response.statusText, detail: text.slice(0, 500) });
}

class Kv {
  #http;

  constructor(http) {
    this.#http = http;
  }

  async #call(command, body) {
    if (this.#http.projectId !== undefined) body.project_id = this.#http.projectId;
    return this.#http.json('POST', `/api/kv/${command}`, body);
  }

  async get(key) {
    return (await this.#call('get', { key })).value ?? null;
  }

  async set(key, value, options = {}) {
    const body = { key, value };
    for (const name of ['ex', 'px']) if (options[name] !== undefined) body[name] = options[name];
    for (const name of ['nx', 'xx']) if (options[name]) body[name] = true;
    return (await this.#call('set', body)).result ?? null;
  }

  async del(...keys) {
    return (await this.#call('del', { keys: keys.flat() })).deleted;
  }

  async incr(key, amount = 1) {
    return (await this.#call('incr', { key, amount })).value;
  }

  async expire(key, seconds) {
    const answer = await this.#call('expire', { key, seconds });
    // Berth answers both; Temps' server only `success`, Temps' SDK returns `result`.
    return answer.result ?? (answer.success ? 1 : 0);
  }

  async ttl(key) {
    return (await this.#call('ttl', { key })).ttl;
  }

  async keys(pattern = '*') {
    return (await this.#call('keys', { pattern })).keys;
  }
}

/** Berth answers both spellings, Temps camelCase only. */
function blobInfo(wire) {
  return {
    url: wire.url,
    pathname: wire.pathname,
    contentType: wire.contentType ?? wire.content_type,
    size: wire.size,
    uploadedAt: wire.uploadedAt ?? wire.uploaded_at,
  };
}

/** The `/api/blob/...` path of a blob url, or undefined for a plain pathname. */
function apiPath(blob) {
  if (/^https?:\/\//i.test(blob)) {
    const path = new URL(blob).pathname;
    return path.startsWith(BLOB_PREFIX) ? path : undefined;
  }
  return blob.startsWith(BLOB_PREFIX) ? blob : undefined;
}

/** The pathname within the project of a url or pathname (for delete and copy). */
function pathnameOf(blob) {
  const path = apiPath(blob);
  if (path === undefined) return blob.replace(/^\/+/, '');
  const rest = path.slice(BLOB_PREFIX.length).replace(/^\d+\//, '');
  try {
    return decodeURIComponent(rest);
  } catch {
    return rest;
  }
}

/** Wraps an async iterable (a Node stream, a generator) as a web ReadableStream. */
function toReadableStream(iterable) {
  const iterator = iterable[Symbol.asyncIterator]();
  return new ReadableStream({
    async pull(controller) {
      const { value, done } = await iterator.next();
      if (done) controller.close();
      else controller.enqueue(typeof value === 'string' ? new TextEncoder().encode(value) : value);
    },
    async cancel(reason) {
      await iterator.return?.(reason);
    },
  });
}

class BlobStore {
  #http;

  constructor(http) {
    this.#http = http;
  }

  #downloadUrl(blob) {
    if (!blob) throw new BerthError({ title: 'Invalid input', detail: 'a blob url or pathname is required' });
    const path = apiPath(blob);
    if (path !== undefined) return this.#http.url(new URL(path, 'http://x').pathname);
    if (this.#http.projectId === undefined) {
      throw new BerthError({
        title: 'Configuration',
        detail: `${JSON.stringify(blob)} is a pathname: pass the blob's url (from put or list), or set projectId`,
      });
    }
    const segments = blob.replace(/^\/+/, '').split('/').map(encodeURIComponent).join('/');
    return this.#http.url(`${BLOB_PREFIX}${this.#http.projectId}/${segments}`);
  }

  async put(pathname, body, options = {}) {
    if (!pathname) throw new BerthError({ title: 'Invalid input', detail: 'pathname is required' });
    const query = new URLSearchParams({ pathname });
    const headers = {};
    if (options.contentType) {
      query.set('content_type', options.contentType);
      headers['content-type'] = options.contentType;
    }
    if (options.addRandomSuffix) query.set('add_random_suffix', 'true');
    if (this.#http.projectId !== undefined) query.set('project_id', String(this.#http.projectId));
    const init = { method: 'POST', headers };
    if (typeof body === 'string') {
      // As bytes: a string body would make fetch claim text/plain over the server's guess.
      init.body = new TextEncoder().encode(body);
    } else if (body instanceof ReadableStream || (body && typeof body[Symbol.asyncIterator] === 'function' && !(body instanceof Uint8Array))) {
      // Streamed as it is read: fetch needs `duplex: 'half'` for a stream body.
      init.body = body instanceof ReadableStream ? body : toReadableStream(body);
      init.duplex = 'half';
    } else {
      init.body = body;
    }
    const response = await this.#http.send(this.#http.url(`/api/blob?${query}`), init);
    return blobInfo(await response.json());
  }

  /** The download's Response (stream its body, or read it with .arrayBuffer()). */
  async get(blob, options = {}) {
    const headers = {};
    if (options.range) {
      const [start, end] = options.range;
      headers.range = `bytes=${start}-${end ?? ''}`;
    }
    return this.#http.send(this.#downloadUrl(blob), { method: 'GET', headers });
  }

  /** Temps' name for get. */
  async download(blob, options) {
    return this.get(blob, options);
  }

  /** The whole blob (or the range) as bytes. */
  async bytes(blob, options) {
    return new Uint8Array(await (await this.get(blob, options)).arrayBuffer());
  }

  async head(blob) {
    const url = this.#downloadUrl(blob);
    const response = await this.#http.send(url, { method: 'HEAD' });
    const path = new URL(url).pathname;
    const length = response.headers.get('content-length');
    return {
      url: path,
      pathname: pathnameOf(path),
      contentType: response.headers.get('content-type') ?? '',
      size: length === null ? 0 : Number(length),
      uploadedAt: response.headers.get('last-modified') ?? '',
    };
  }

  async list(options = {}) {
    const query = new URLSearchParams();
    if (options.prefix) query.set('prefix', options.prefix);
    if (options.limit !== undefined) query.set('limit', String(options.limit));
    if (options.cursor) query.set('cursor', options.cursor);
    if (this.#http.projectId !== undefined) query.set('project_id', String(this.#http.projectId));
    const qs = query.toString();
    const response = await this.#http.send(this.#http.url(qs ? `/api/blob?${qs}` : '/api/blob'), { method: 'GET' });
    const page = await response.json();
    return {
      blobs: page.blobs.map(blobInfo),
      cursor: page.cursor ?? undefined,
      hasMore: page.hasMore ?? page.has_more ?? false,
    };
  }

  /** Every blob from `options` on, page after page as the loop asks for more. */
  async *listAll(options = {}) {
    let cursor = options.cursor;
    for (;;) {
      const page = await this.list({ ...options, cursor });
      yield* page.blobs;
      if (!page.hasMore || !page.cursor) return;
      cursor = page.cursor;
    }
  }

  /** Deletes blobs (urls or pathnames); how many existed. */
  async delete(blobs) {
    const pathnames = (Array.isArray(blobs) ? blobs : [blobs]).map(pathnameOf);
    const body = { pathnames };
    if (this.#http.projectId !== undefined) body.projectId = this.#http.projectId;
    return (await this.#http.json('DELETE', '/api/blob', body)).deleted;
  }

  /** Temps' name for delete. */
  async del(blobs) {
    return this.delete(blobs);
  }

  async copy(fromUrl, toPathname) {
    // Temps' server reads camelCase bodies.
    const body = { fromUrl, toPathname };
    if (this.#http.projectId !== undefined) body.projectId = this.#http.projectId;
    return blobInfo(await this.#http.json('POST', '/api/blob/copy', body));
  }
}
