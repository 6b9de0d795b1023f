import { netnsUnavailable } from '../../scripts/netns.js';
import { defineSpadSuite } from './spad-suite.js';

defineSpadSuite('nftables', await netnsUnavailable());
