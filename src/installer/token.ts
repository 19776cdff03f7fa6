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

export interface TokenRequestOptions {
  namespace: string;
  serviceAccount: string;
  /** Requested lifetime; the API server may shorten it (minimum 600s). */
  expirationSeconds: number;
  /** Fraction of the lifetime after which a new token is requested. */
  refreshAt?: number;
}

export class TokenRequestSource implements TokenSource {
  readonly description: string;
  private cached: { token: string; issuedAt: Date; expiresAt: Date } | null = null;
  constructor(
    private readonly request: RequestToken,
    private readonly options: TokenRequestOptions,
  ) {
    this.description = `TokenRequest for ServiceAccount ${options.namespace}/${options.serviceAccount}`;
  }

  private fresh(now: Date): boolean {
    if (!this.cached) return false;
    const { issuedAt, expiresAt } = this.cached;
    const lifetime = expiresAt.getTime() - issuedAt.getTime();
    return now.getTime() < issuedAt.getTime() + lifetime * (this.options.refreshAt ?? 0.8);
  }

  async current(now = new Date()): Promise<PluginToken> {
    if (this.fresh(now) && this.cached) return { token: this.cached.token, expiresAt: this.cached.expiresAt };
    try {
      const { token, expirationTimestamp } = await this.request({
        namespace: this.options.namespace,
        serviceAccount: this.options.serviceAccount,
        expirationSeconds: this.options.expirationSeconds,
      });
      if (!token) throw new Error('TokenRequest returned no token');
      this.cached = { token, issuedAt: now, expiresAt: new Date(expirationTimestamp) };
      return { token, expiresAt: this.cached.expiresAt };
    } catch (err) {
      // A failed refresh keeps the old token while it still works; the next reconcile tries again.
      if (this.cached && now < this.cached.expiresAt)
        return { token: this.cached.token, expiresAt: this.cached.expiresAt };
      throw new Error(`${this.description} failed: ${(err as Error).message}`, { cause: err });
    }
  }
}
