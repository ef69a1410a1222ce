/** How nettune reaches hosts: quoting, errors, the SSH and local transports and the pool. */

export * from "./types";
export * from "./quote";
export * from "./errors";
export * from "./ssh";
export * from "./local";
export * from "./pool";
