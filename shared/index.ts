export * from './errors.ts';
export * from './events.ts';
export * from './schemas.ts';
export * from './feed-entries.ts';
export * from './routes.ts';
export * from './stream-ids.ts';
