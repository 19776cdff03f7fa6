// Where the plugin's API token comes from.
//
// Least privilege: by default the installer asks the TokenRequest API for a short-lived token of a dedicated
// ServiceAccount (asm-cni-plugin) whose only right is `get pods`, and refreshes it well before it expires. The
// installer's own token (which may also list and delete pods for repair) never lands on the host. Without a plugin
// ServiceAccount configured, the installer's projected token from its service-account dir is used instead.
import { promises as fs } from 'node:fs';
import path from 'node:path';

export interface PluginToken {
  token: string;
  /** When the token stops working; null when unknown (a projected file token, refreshed by the kubelet). */
  expiresAt: Date | null;
}

export interface TokenSource {
  /** Human-readable origin for logs. */
  readonly description: string;
  current(now?: Date): Promise<PluginToken>;
}

/** The projected service-account token file, read on every call (the kubelet rotates it in place). */
export class FileTokenSource implements TokenSource {
  readonly description: string;
  constructor(private readonly saDir: string) {
    this.description = `service-account token in ${saDir}`;
  }
  async current(): Promise<PluginToken> {
    const token = (await fs.readFile(path.join(this.saDir, 'token'), 'utf8')).trim();
    if (token === '') throw new Error(`${path.join(this.saDir, 'token')} is empty`);
    return { token, expiresAt: null };
  }
}

/** What the TokenRequest call needs: the subresource create of serviceaccounts/token. */
export type RequestToken = (request: {
  namespace: string;
  serviceAccount: string;
  expirationSeconds: number;
}) => Promise<{ token: string; expirationTimestamp: Date }>;

/** Why a new token was requested: the first one, the cached one nearing expiry, or the cached one refused. */
export type RefreshReason = 'initial' | 'expiring' | 'rejected';

export interface TokenRequestOptions {
  namespace: string;
  serviceAccount: string;
  /** Requested lifetime; the API server may shorten it (minimum 600s). */
  expirationSeconds: number;
  /** Fraction of the lifetime after which a new token is requested. */
  refreshAt?: number;
  /** Called after each successful TokenRequest (metrics, logs). */
  onRefresh?: (reason: RefreshReason) => void;
}

export class TokenRequestSource implements TokenSource {
  readonly description: string;
  private cached: { token: string; issuedAt: Date; expiresAt: Date } | null = null;
  /** The API server refused the cached token: it is never handed out again. */
  private rejected = false;
  constructor(
    private readonly request: RequestToken,
    private readonly options: TokenRequestOptions,
  ) {
    this.description = `TokenRequest for ServiceAccount ${options.namespace}/${options.serviceAccount}`;
  }

  /** The token last handed out (and written into the kubeconfig), or null before the first. */
  get cachedToken(): string | null {
    return this.cached?.token ?? null;
  }

  /** True while the cached token is known to be refused and no new one could be had yet. */
  get rejectedPending(): boolean {
    return this.rejected;
  }

  /** Marks the cached token as refused by the API server: the next current() must request a new one. */
  reject(): void {
    if (this.cached) this.rejected = true;
  }

  private fresh(now: Date): boolean {
    if (!this.cached || this.rejected) return false;
    const { issuedAt, expiresAt } = this.cached;
    const lifetime = expiresAt.getTime() - issuedAt.getTime();
    return now.getTime() < issuedAt.getTime() + lifetime * (this.options.refreshAt ?? 0.8);
  }

  async current(now = new Date()): Promise<PluginToken> {
    if (this.fresh(now) && this.cached) return { token: this.cached.token, expiresAt: this.cached.expiresAt };
    const reason: RefreshReason = this.rejected ? 'rejected' : this.cached ? 'expiring' : 'initial';
    try {
      const { token, expirationTimestamp } = await this.request({
        namespace: this.options.namespace,
        serviceAccount: this.options.serviceAccount,
        expirationSeconds: this.options.expirationSeconds,
      });
      if (!token) throw new Error('TokenRequest returned no token');
      this.cached = { token, issuedAt: now, expiresAt: new Date(expirationTimestamp) };
      this.rejected = false;
      this.options.onRefresh?.(reason);
      return { token, expiresAt: this.cached.expiresAt };
    } catch (err) {
      // A failed refresh keeps the old token while it still works (never one the API server refused); the next
      // reconcile tries again.
      if (this.cached && !this.rejected && now < this.cached.expiresAt)
        return { token: this.cached.token, expiresAt: this.cached.expiresAt };
      throw new Error(`${this.description} failed: ${(err as Error).message}`, { cause: err });
    }
  }
}

/** What the API server says about a token: 'unknown' when it could not be asked (unreachable, timeout). */
export type TokenVerdict = 'accepted' | 'rejected' | 'unknown';
export type ProbeToken = (token: string) => Promise<TokenVerdict>;

export interface TokenCheckOptions {
  /** Least time between two probes of the same token (a new token is probed at once). */
  minIntervalMs: number;
  /** Injected clock (ms). */
  now?: () => number;
  /** Called when the API server refused the token in place. */
  onRejected?: () => void;
}

/**
 * Notices within one reconcile that the API server no longer accepts the plugin's token (its ServiceAccount deleted
 * and recreated by a reinstall, the token revoked), instead of at 80% of the token's lifetime.
 *
 * Why an authenticated call from the installer (a SelfSubjectReview with the plugin's token, see main.ts) rather than
 * the plugin recording its 401s in a file: the installer learns before any pod fails, not after the first sandbox
 * failed; the plugin stays stateless (no writable state on the host to trust); and a SelfSubjectReview needs no RBAC
 * and reads no storage, so its cost is one authentication per node per resync interval.
 */
export class TokenCheck {
  private lastProbe = -Infinity;
  private lastToken: string | null = null;
  private readonly now: () => number;
  constructor(
    private readonly source: TokenRequestSource,
    private readonly probe: ProbeToken,
    private readonly options: TokenCheckOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** True while the API server refuses the token in place and no new one could be had. */
  get pending(): boolean {
    return this.source.rejectedPending;
  }

  /**
   * Probes the token in place (at most once per interval, a new token at once). 'rejected' marks it so the next
   * reconcile requests a new one; 'skipped' when there is nothing to probe: no token yet, one probed recently, or
   * one already known to be refused (the reconcile passes retry the request until a new one comes).
   */
  async check(): Promise<TokenVerdict | 'skipped'> {
    if (this.source.rejectedPending) return 'skipped';
    const token = this.source.cachedToken;
    if (token === null) return 'skipped';
    const now = this.now();
    if (token === this.lastToken && now - this.lastProbe < this.options.minIntervalMs) return 'skipped';
    this.lastProbe = now;
    this.lastToken = token;
    const verdict = await this.probe(token);
    if (verdict === 'rejected') {
      this.source.reject();
      this.options.onRejected?.();
    }
    return verdict;
  }
}
