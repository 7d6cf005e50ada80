// Entry point of `npx tidemark` (see bin/tidemark.mjs).
import { main } from './main.ts';

process.exitCode = await main();
