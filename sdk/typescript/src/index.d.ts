// Types of index.js, written by hand (the package has no build step).

/** Settings of {@link createClient}; what is missing comes from the environment. */
export interface ClientConfig {
  /** Berth's address, without `/api` (default: BERTH_API_URL, then TEMPS_API_URL). */
  baseUrl?: string;
  /** Temps' SDK's name for baseUrl. */
  apiUrl?: string;
  /** An API token (default: BERTH_TOKEN, then TEMPS_TOKEN). */
  token?: string;
  /**
   * The project to act for (default: BERTH_PROJECT_ID, then TEMPS_PROJECT_ID): required with
   * an admin token; a project token implies its own.
   */
  projectId?: number;
  /** A fetch implementation (default: the global one). */
  fetch?: typeof fetch;
}

/** Berth's problem+json answer (RFC 7807), with any further fields it carries. */
export interface Problem {
  status: number;
  title: string;
  detail: string;
  type?: string;
  correlation_id?: string;
  [field: string]: unknown;
}

/** Every failure; `status` 0 when no answer came (network error, bad configuration). */
export declare class BerthError extends Error {
  readonly status: number;
  readonly title: string;
  readonly detail: string;
  readonly problem: Problem;
}

export interface Client {
  readonly projectId: number | undefined;
  readonly kv: Kv;
  readonly blob: BlobStore;
  /** The same client acting for project `id`. */
  withProject(id: number): Client;
}

export declare function createClient(config?: ClientConfig): Client;

/** Expiry and conditions of {@link Kv.set}. */
export interface SetOptions {
  /** Expire after this many seconds (not with px). */
  ex?: number;
  /** Expire after this many milliseconds (not with ex). */
  px?: number;
  /** Only set if the key does not exist. */
  nx?: boolean;
  /** Only set if the key exists. */
  xx?: boolean;
}

/** Temps' KV commands; values are any JSON. */
export interface Kv {
  /** The value, or null if the key does not exist. */
  get<T = unknown>(key: string): Promise<T | null>;
  /** 'OK', or null when nx/xx kept the value from being written. */
  set(key: string, value: unknown, options?: SetOptions): Promise<'OK' | null>;
  /** How many of the keys existed. */
  del(...keys: Array<string | string[]>): Promise<number>;
  /** Adds `amount` (default 1) to the integer at key; the new value. */
  incr(key: string, amount?: number): Promise<number>;
  /** 1 if the key exists (and now expires), 0 if not. */
  expire(key: string, seconds: number): Promise<number>;
  /** Seconds left; -1 without expiry, -2 if the key does not exist. */
  ttl(key: string): Promise<number>;
  /** The project's keys matching a Redis glob (default `*`). */
  keys(pattern?: string): Promise<string[]>;
}

/** A stored blob. */
export interface BlobInfo {
  /** `/api/blob/{projectId}/{pathname}`: what get, head, delete and copy take. */
  url: string;
  pathname: string;
  contentType: string;
  size: number;
  /** RFC 3339 (put, list, copy) or an HTTP date (head). */
  uploadedAt: string;
}

export interface PutOptions {
  /** The media type (default: the server guesses from the extension). */
  contentType?: string;
  /** Add a random suffix so uploads never replace each other. */
  addRandomSuffix?: boolean;
}

/** What put uploads; streams and async iterables are streamed, not buffered. */
export type BlobBody =
  | string
  | Uint8Array
  | ArrayBuffer
  | Blob
  | ReadableStream<Uint8Array>
  | AsyncIterable<Uint8Array | string>;

export interface ListOptions {
  prefix?: string;
  limit?: number;
  cursor?: string;
}

export interface ListResult {
  blobs: BlobInfo[];
  /** Pass as `cursor` for the next page. */
  cursor?: string;
  hasMore: boolean;
}

export interface GetOptions {
  /** Bytes start..=end (end omitted: to the end); the answer is 206. */
  range?: [start: number, end?: number];
}

/** Temps' blob store. Blobs are named by url, or by pathname when the client has a projectId. */
export interface BlobStore {
  put(pathname: string, body: BlobBody, options?: PutOptions): Promise<BlobInfo>;
  /** The download's Response, body not yet read. */
  get(blob: string, options?: GetOptions): Promise<Response>;
  /** Temps' name for get. */
  download(blob: string, options?: GetOptions): Promise<Response>;
  /** The blob (or range) as bytes. */
  bytes(blob: string, options?: GetOptions): Promise<Uint8Array>;
  head(blob: string): Promise<BlobInfo>;
  list(options?: ListOptions): Promise<ListResult>;
  /** Every blob, fetching pages as the loop goes. */
  listAll(options?: ListOptions): AsyncIterable<BlobInfo>;
  /** How many of the blobs existed. */
  delete(blobs: string | string[]): Promise<number>;
  /** Temps' name for delete. */
  del(blobs: string | string[]): Promise<number>;
  copy(fromUrl: string, toPathname: string): Promise<BlobInfo>;
}
