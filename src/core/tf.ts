/**
 * The one TensorFlow.js import of the library. The union package's CommonJS build registers every
 * gradient against the shared `@tensorflow/tfjs-core`; importing tfjs-core alone registers none.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

export { tf };
export type Tensor = tf.Tensor;
export type Tensor1D = tf.Tensor1D;
export type Tensor2D = tf.Tensor2D;
export type Tensor3D = tf.Tensor3D;
export type Variable = tf.Variable;
