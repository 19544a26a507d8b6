/**
 * A Kysely plugin that counts the queries a Kysely instance runs, to prove
 * how many reached PostgreSQL: `db.withPlugin(counter.plugin)`.
 */
import { TableNode, type KyselyPlugin, type PluginTransformQueryArgs, type PluginTransformResultArgs, type QueryResult, type RootOperationNode, type UnknownRow } from 'kysely';

export interface QueryCounter {
  plugin: KyselyPlugin;
  /** Queries started since creation or the last `reset`. */
  readonly count: number;
  /** Queries started that read from `table` (a `select ... from table`). */
  countFrom(table: string): number;
  reset(): void;
}

export function createQueryCounter(): QueryCounter {
  let count = 0;
  const byTable = new Map<string, number>();
  const plugin: KyselyPlugin = {
    transformQuery({ node }: PluginTransformQueryArgs): RootOperationNode {
      count++;
      if (node.kind === 'SelectQueryNode') {
        for (const from of node.from?.froms ?? []) {
          if (TableNode.is(from)) {
            const table = from.table.identifier.name;
            byTable.set(table, (byTable.get(table) ?? 0) + 1);
          }
        }
      }
      return node;
    },
    async transformResult({ result }: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
      return result;
    },
  };
  return {
    plugin,
    get count() {
      return count;
    },
    countFrom: (table) => byTable.get(table) ?? 0,
    reset() {
      count = 0;
      byTable.clear();
    },
  };
}
