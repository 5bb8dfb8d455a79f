// Run face-api.js 0.22.2's own FaceExpressionNet (tfjs-core 1.7.0, CPU backend, Node) on raw 112x112 RGB crops.
//
// Why: models/convert_faceapi.py rebuilds the network by hand, so the reference must come from the original
// JavaScript. models/record_faceapi_reference.py makes the crops, calls this script once and stores the result;
// the npm packages live in a throwaway folder and are never a project dependency:
//
//   NODE_PATH=/tmp/faceapi-ref/node_modules node models/record_faceapi_reference.js WEIGHTS_DIR CROPS.u8 N OUT_PREFIX
//
// CROPS.u8 holds N * 112 * 112 * 3 bytes (HWC, RGB). Writes OUT_PREFIX.f32 (N x 7 float32, little-endian, in
// face-api's FACE_EXPRESSION_LABELS order) and OUT_PREFIX.json (labels, versions, preprocessing check).
'use strict';

const fs = require('fs');
const faceapi = require('face-api.js');

const tf = faceapi.tf;
const SIZE = 112;
const CHUNK = 16;

function cropTensors(bytes, start, end) {
  const n = SIZE * SIZE * 3;
  const out = [];
  for (let i = start; i < end; i++) {
    // the uint8 values as float, exactly what tf.browser.fromPixels would give for these pixels
    out.push(tf.tensor3d(Float32Array.from(bytes.subarray(i * n, (i + 1) * n)), [SIZE, SIZE, 3], 'float32'));
  }
  return out;
}

// face-api's input path (toNetInput -> toBatchTensor(112, true): pad to square, resize) must leave 112x112
// crops untouched, else the ONNX model would be compared against a different image.
async function preprocessingDiff(tensors) {
  const netInput = await faceapi.toNetInput(tensors);
  const batch = netInput.toBatchTensor(SIZE, true);
  const direct = tf.stack(tensors);
  const diff = (await tf.max(tf.abs(tf.sub(batch, direct))).data())[0];
  tf.dispose([batch, direct]);
  return diff;
}

async function main() {
  const [weightsDir, cropsPath, nArg, outPrefix] = process.argv.slice(2);
  const n = Number(nArg);
  await tf.setBackend('cpu');
  await tf.ready();
  const net = new faceapi.FaceExpressionNet();
  await net.loadFromDisk(weightsDir);
  const bytes = new Uint8Array(fs.readFileSync(cropsPath));
  if (bytes.length !== n * SIZE * SIZE * 3) {
    throw new Error(`${cropsPath}: ${bytes.length} bytes, expected ${n} crops of ${SIZE}x${SIZE}x3`);
  }
  const probs = new Float32Array(n * 7);
  let maxPreprocessingDiff = 0;
  for (let start = 0; start < n; start += CHUNK) {
    const end = Math.min(n, start + CHUNK);
    const tensors = cropTensors(bytes, start, end);
    maxPreprocessingDiff = Math.max(maxPreprocessingDiff, await preprocessingDiff(tensors));
    // an array input makes predictExpressions return one FaceExpressions per crop
    const expressions = await net.predictExpressions(tensors);
    expressions.forEach((e, k) => {
      faceapi.FACE_EXPRESSION_LABELS.forEach((label, j) => {
        probs[(start + k) * 7 + j] = e[label];
      });
    });
    tf.dispose(tensors);
  }
  fs.writeFileSync(`${outPrefix}.f32`, Buffer.from(probs.buffer));
  const info = {
    labels: faceapi.FACE_EXPRESSION_LABELS,
    backend: tf.getBackend(),
    max_preprocessing_diff: maxPreprocessingDiff,
    versions: {
      node: process.version,
      'tfjs-core': tf.version_core,
      'face-api.js': require('face-api.js/package.json').version,
    },
  };
  fs.writeFileSync(`${outPrefix}.json`, JSON.stringify(info));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
