// The suite against its own naive reference backend: the shape every backend's conformance
// test file takes (import the backend, hand the suite a factory).

import { conformance } from '../src/index.js';
import { referenceBackend } from './reference-backend.js';

conformance(() => referenceBackend);
